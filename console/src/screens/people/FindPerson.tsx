// Finds one person by part of their name or address as one types, for dialogs (merge, link). The
// input is left to the combo box: it shows the chosen person's name itself, and setting it from
// outside while focused would open the list again.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { ComboBox, Input, Label, ListBox, ListBoxItem, Popover, Text } from 'react-aria-components';
import { api, unwrap } from '../../api/client.ts';

export function FindPerson({
  label,
  onChange,
  excludeId,
}: {
  label: string;
  onChange(id: string | undefined): void;
  /** Someone not to offer (the person a merge keeps). */
  excludeId?: string;
}) {
  const [text, setText] = useState('');
  const found = useQuery({
    queryKey: ['people', 'find', '', text],
    queryFn: () => unwrap(api.GET('/api/v1/people', { params: { query: { q: text, limit: 20 } } })),
    enabled: text.trim().length >= 2,
    staleTime: 30_000,
  });
  const items = (found.data?.items ?? [])
    .filter((p) => p.id !== excludeId)
    .map((p) => ({ id: p.id, name: p.email ? `${p.displayName} <${p.email}>` : p.displayName }));
  return (
    <ComboBox
      className="combobox"
      items={items}
      // The server finds (by name or any address); choosing an item puts its name in the input,
      // which is not a new search.
      defaultFilter={() => true}
      onInputChange={(t) => {
        if (!items.some((i) => i.name === t)) setText(t);
      }}
      onSelectionChange={(key) => onChange(key === null ? undefined : String(key))}
      menuTrigger="input"
      allowsEmptyCollection
    >
      <Label>{label}</Label>
      <div className="combobox-input">
        <Input placeholder="Name or address" />
      </div>
      <Text slot="description" className="field-hint">
        Type two letters or more, then choose from the list.
      </Text>
      <Popover className="popover">
        <ListBox
          className="listbox"
          renderEmptyState={() => (
            <p className="status">
              {text.trim().length < 2
                ? 'Type two letters or more.'
                : found.isFetching
                  ? 'Searching…'
                  : 'Nobody found.'}
            </p>
          )}
        >
          {(item: { id: string; name: string }) => (
            <ListBoxItem id={item.id} className="listbox-item" textValue={item.name}>
              {item.name}
            </ListBoxItem>
          )}
        </ListBox>
      </Popover>
    </ComboBox>
  );
}
