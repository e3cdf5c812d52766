// The order test files start in. Vitest starts first the files that took longest in the last run on
// this machine, from its cache; a clean clone (CI) has no cache, and files are then ordered by size,
// which started two 45-second files last, with the other workers idle. The files that take longest
// everywhere (wall time, mostly waiting on processes, leases and a browser) are named here and start
// first; the others follow in Vitest's own order.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const SLOW_FILES = [
  'test/notify-crash.test.ts',
  'test/server-process.test.ts',
  'test/console/signin.test.ts',
  'test/console/operations.test.ts',
  'src/cli/mailbox.test.ts',
  'test/inbound-crash.test.ts',
  'test/console/ticket.test.ts',
  'test/console/people.test.ts',
  'test/console/inbox.test.ts',
  'test/outbound-crash.test.ts',
  'test/demo.test.ts',
  'test/console/sla.test.ts',
  'test/hostile-sweep-1.test.ts',
  'test/hostile-sweep-2.test.ts',
];

export default class SlowFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const i = SLOW_FILES.findIndex((file) => spec.moduleId.endsWith(`/${file}`));
      return i < 0 ? SLOW_FILES.length : i;
    };
    return sorted
      .map((spec, i) => ({ spec, i }))
      .sort((a, b) => rank(a.spec) - rank(b.spec) || a.i - b.i)
      .map((x) => x.spec);
  }
}
