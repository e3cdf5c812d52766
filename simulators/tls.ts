// A throwaway self-signed certificate for the simulators' TLS listeners, valid for 127.0.0.1 and
// localhost. node:crypto can make keys but not X.509 certificates, and no certificate library is
// installed (no node-forge, selfsigned or @peculiar/x509; adding one for tests is not worth a
// dependency), so the system `openssl` binary signs one. Its files exist in a temp dir only while
// openssl writes them: the PEM text is read into memory and the dir removed before this returns.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export interface SelfSignedCertificate {
  /** PEM private key (P-256). */
  key: string;
  /** PEM certificate; also what a client passes as `ca` to trust it. */
  cert: string;
}

let pending: Promise<SelfSignedCertificate> | undefined;

/**
 * One certificate per process: each simulator started in a test run gets the same one, so a
 * benchmark that starts many pays for openssl once. A failure is not cached.
 */
export function selfSignedCertificate(): Promise<SelfSignedCertificate> {
  pending ??= generate().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

async function generate(): Promise<SelfSignedCertificate> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-cert-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    // One day is plenty for a certificate that lives as long as the process.
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
    const [key, cert] = await Promise.all([readFile(keyFile, 'utf8'), readFile(certFile, 'utf8')]);
    return { key, cert };
  } catch (err) {
    throw new Error(`could not make a self-signed certificate with openssl: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
