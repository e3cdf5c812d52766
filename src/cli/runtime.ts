// What the CLI's database commands run on, loaded by main.ts only when a command needs it. Not the
// server (src/app.ts: Fastify, the providers' clients, the parsers), which `start` and `demo` load
// themselves: loading it took most of every command's second.
export { migrateAll, openDatabase, resolveSecretKey } from '../platform/db/database.ts';
export { auditedCliWrite } from './audit.ts';
export { rawBodyPayload } from '../modules/audit/request-audit.ts';
export { migrationStatus } from '../platform/db/migrate.ts';
export { getHealth, healthOf, isNotConnected } from '../modules/inbound/health.ts';
export {
  assertProviderEndpoints,
  connectedWith,
  createMailbox,
  findMailbox,
  listMailboxes,
  MAILBOX_AUDIT_REDACT,
} from '../modules/inbound/mailboxes.ts';
export { ingestRawMessage } from '../modules/inbound/process.ts';
export { messageIdKey } from '../modules/inbound/signing.ts';
export { mergePeople } from '../modules/merge/service.ts';
export { resolvePerson } from '../modules/people/identities.ts';
export { firstAgentId, getPerson } from '../modules/people/service.ts';
export { inviteByEmail, resetByEmail } from '../modules/sessions/accounts.ts';
export { createTenant, deleteTenant, findTenant, listTenants } from '../modules/tenants/service.ts';
export { findTokenForRevocation, mintToken, revokeToken } from '../modules/tokens/service.ts';
export { systemClock } from '../platform/clock.ts';
export { withTenant, withTenantRead } from '../platform/db/tx.ts';
export { createLogger } from '../platform/logging.ts';
export { JobQueue } from '../platform/queue/queue.ts';
export { JobRegistry } from '../platform/queue/registry.ts';
export { getDelivery, listDeliveries } from '../modules/outbound/ledger.ts';
export { retryDeliveryWithMail } from '../modules/outbound/replies.ts';
export { sendJobOf } from '../modules/outbound/job-refs.ts';
