// A person named by id, as a link to their page in the directory. The name is fetched (and cached)
// once per person; a person who is gone (deleted, merged away) is said so rather than hidden.
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api, ApiError, unwrap } from '../../api/client.ts';

export const personHref = (id: string) => `/people?person=${encodeURIComponent(id)}`;

export function PersonLink({ id }: { id: string }) {
  const person = useQuery({
    queryKey: ['person', id],
    queryFn: () => unwrap(api.GET('/api/v1/people/{id}', { params: { path: { id } } })),
    staleTime: 300_000,
    retry: false,
  });
  if (person.isError) {
    const gone = person.error instanceof ApiError && person.error.status === 404;
    return (
      <span className="muted" title={id}>
        {gone ? 'a person no longer here' : id.slice(0, 8)}
      </span>
    );
  }
  return <Link to={personHref(id)}>{person.data?.displayName ?? id.slice(0, 8)}</Link>;
}
