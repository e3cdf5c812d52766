// The workspace's agents (assignees), as the screens list them. The combo box that finds anyone by
// name or address is PersonPicker.tsx (its own chunk: react-aria's combo box is large).
import { useQuery } from '@tanstack/react-query';
import { useId } from 'react';
import { api, unwrap } from '../api/client.ts';
import { later } from './later.tsx';
import type { PersonPickerProps } from './PersonPicker.tsx';
import { AGENTS_QUERY } from './queries.ts';

export interface PersonRef {
  id: string;
  displayName: string;
  email: string | null;
}

/** The active agents, by name (for assigning). */
export function useAgents(): PersonRef[] {
  const agents = useQuery({
    queryKey: ['people', 'agents'],
    queryFn: () => unwrap(api.GET('/api/v1/people', { params: { query: AGENTS_QUERY } })),
    staleTime: 300_000,
  });
  return (agents.data?.items ?? [])
    .map((p) => ({ id: p.id, displayName: p.displayName, email: p.email }))
    .sort((a, b) => a.displayName.localeCompare(b.displayName));
}

const LaterPersonPicker = later(() => import('./PersonPicker.tsx'));

/**
 * Finds a person by part of their name or address; `value` is the chosen id. Its code comes after
 * the screen's first content (lib/later.tsx); until then a disabled field of the same name stands in.
 */
export function PersonPicker(props: PersonPickerProps) {
  const id = useId();
  return (
    <LaterPersonPicker
      {...props}
      fallback={
        <div className="combobox">
          <label htmlFor={id}>{props.label}</label>
          <div className="combobox-input">
            <input id={id} placeholder="Name or address" disabled />
          </div>
        </div>
      }
    />
  );
}
