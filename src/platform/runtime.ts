// Process-wide tuning of the JavaScript runtime for Relaydesk's workload.
import v8 from 'node:v8';

let tuned = false;

/**
 * Mail makes many large short-lived buffers (request bodies, decoded attachments, PostgreSQL bind
 * buffers of a few MB each). By default V8 starts a full collection of the whole JavaScript heap
 * whenever such external memory has grown by a fixed amount since the last one, which for a stream
 * of 2 MB messages meant a full mark-and-sweep every 100–250 ms, about a third of a core of GC
 * threads. Counting external memory inside the heap's global limit instead lets collections follow
 * the heap's own growth: about 15 full collections instead of 110 for 3,000 mixed messages, and the
 * inbound benchmark's server CPU fell from 0.83 to 0.59 cores (docs/benchmarks.md). The cost is a
 * higher peak of dead buffers between collections, measured there too. The flag is read whenever
 * V8 computes its limits, so setting it as the process starts is enough.
 */
export function tuneRuntime(): void {
  if (tuned || process.env['RELAYDESK_DEFAULT_GC'] === '1') return;
  tuned = true;
  v8.setFlagsFromString('--external-memory-accounted-in-global-limit');
}
