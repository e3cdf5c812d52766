// A database outage at one write, made with a real trigger: the first `times` UPDATEs of the listed
// rows of `table` that set `status` to `status` fail with SQLSTATE 08006 (connection failure), as a
// write does when PostgreSQL goes away under it. The sequence counting them is not transactional,
// so a failed (rolled-back) try still counts. Returns the undo.
import type { Queryable } from '../src/platform/db/pool.ts';

export async function failWritesAsLostConnection(
  admin: Queryable,
  options: { table: string; ids: string[]; status: string; times: number },
): Promise<{ restart(): Promise<void>; remove(): Promise<void> }> {
  const name = `outage_${Math.random().toString(36).slice(2, 10)}`;
  const ids = options.ids.map((id) => `'${id.replace(/[^0-9a-f-]/gi, '')}'`).join(',');
  await admin.query(`CREATE SEQUENCE ${name}`);
  await admin.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
    BEGIN
      IF NEW.status = '${options.status}' AND nextval('${name}') <= ${options.times} THEN
        RAISE EXCEPTION 'connection to the database lost' USING ERRCODE = '08006';
      END IF;
      RETURN NEW;
    END $$`);
  await admin.query(
    `CREATE TRIGGER ${name} BEFORE UPDATE ON ${options.table} FOR EACH ROW
     WHEN (NEW.id = ANY(ARRAY[${ids}]::uuid[])) EXECUTE FUNCTION ${name}()`,
  );
  return {
    restart: async () => void (await admin.query(`ALTER SEQUENCE ${name} RESTART`)),
    remove: async () => {
      await admin.query(`DROP TRIGGER ${name} ON ${options.table}`);
      await admin.query(`DROP FUNCTION ${name}()`);
      await admin.query(`DROP SEQUENCE ${name}`);
    },
  };
}
