// A combo box that finds a person by name or address as one types (react-aria). Screens use it
// through people.tsx, which loads this chunk when it is first shown.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { ComboBox, Input, Label, ListBox, ListBoxItem, Popover } from 'react-aria-components';
import { api, unwrap } from '../api/client.ts';

export interface PersonPickerProps {
  label: string;
  value: string | undefined;
  onChange(id: string | undefined): void;
  kind?: 'agent' | 'contact';
}

/** Finds a person by part of their name or address; `value` is the chosen id. */
export default function PersonPicker({ label, value, onChange, kind }: PersonPickerProps) {
  const [text, setText] = useState('');
  const chosen = useQuery({
    queryKey: ['person', value],
    queryFn: () => unwrap(api.GET('/api/v1/people/{id}', { params: { path: { id: value! } } })),
    enabled: Boolean(value),
    staleTime: 300_000,
  });
  const found = useQuery({
    queryKey: ['people', 'find', kind ?? '', text],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/people', {
          params: { query: { q: text, limit: 20, ...(kind ? { kind } : {}) } },
        }),
      ),
    enabled: text.trim().length >= 2,
    staleTime: 30_000,
  });
  const items = (found.data?.items ?? []).map((p) => ({
    id: p.id,
    name: p.email ? `${p.displayName} <${p.email}>` : p.displayName,
  }));
  const chosenName = chosen.data ? chosen.data.displayName : '';
  return (
    <ComboBox
      className="combobox"
      items={items}
      inputValue={value && text === '' ? chosenName : text}
      onInputChange={(t) => {
        setText(t);
        if (t === '' && value) onChange(undefined);
      }}
      selectedKey={value ?? null}
      onSelectionChange={(key) => {
        onChange(key === null ? undefined : String(key));
        setText('');
      }}
      allowsEmptyCollection
      menuTrigger="input"
    >
      <Label>{label}</Label>
      <div className="combobox-input">
        <Input placeholder="Name or address" />
      </div>
      <Popover className="popover">
        <ListBox
          className="listbox"
          renderEmptyState={() => <p className="status">Type two letters or more.</p>}
        >
          {(item: { id: string; name: string }) => (
            <ListBoxItem id={item.id} className="listbox-item">
              {item.name}
            </ListBoxItem>
          )}
        </ListBox>
      </Popover>
    </ComboBox>
  );
}
