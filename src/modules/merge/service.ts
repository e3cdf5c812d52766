// Merging two people. Everything that points at a person lives in several modules (addresses and
// identities in people, tokens in tokens, requesters, assignees and authors in tickets); this is the
// one place that knows them all, so none of those modules needs to know the others. One
// transaction: the source's references move to the target, the source is removed, the target
// records manual_merge.
import type { TenantTx } from '../../platform/db/tx.ts';
import type { Actor } from '../people/events.ts';
import { finishMerge, lockMergePair, moveAddressesAndIdentities } from '../people/merge.ts';
import type { Person } from '../people/service.ts';
import { movePersonReferences } from '../tickets/housekeeping.ts';
import { moveTokens } from '../tokens/service.ts';

export async function mergePeople(
  tx: TenantTx,
  input: { sourceId: string; targetId: string; actor: Actor },
): Promise<Person> {
  const source = await lockMergePair(tx, input);
  await moveAddressesAndIdentities(tx, input);
  await moveTokens(tx, { fromId: input.sourceId, toId: input.targetId });
  const moved = await movePersonReferences(tx, { fromId: input.sourceId, toId: input.targetId });
  return finishMerge(tx, {
    source,
    targetId: input.targetId,
    actor: input.actor,
    moved: { movedTickets: moved.tickets, movedMessages: moved.messages },
  });
}
