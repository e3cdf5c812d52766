// Where webhooks may go (server-side request forgery): every class of non-public address is refused,
// as a literal and behind a name, unless RELAYDESK_ALLOW_PRIVATE_WEBHOOKS lifts the rule.
import { describe, expect, it } from 'vitest';
import { AppError } from '../../platform/errors.ts';
import { checkEndpointUrl, isForbiddenAddress, parseWebhookUrl, type Resolve, vetUrl } from './address.ts';

const REFUSED: Record<string, string[]> = {
  'IPv4 loopback': ['127.0.0.1', '127.255.255.254'],
  'IPv4 private': ['10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1'],
  'IPv4 link-local': ['169.254.169.254', '169.254.0.1'],
  'CGNAT 100.64/10': ['100.64.0.1', '100.127.255.254'],
  'this network and 0.0.0.0': ['0.0.0.0', '0.1.2.3'],
  'IPv4 multicast and reserved': ['224.0.0.1', '240.0.0.1', '255.255.255.255'],
  'IPv6 loopback and unspecified': ['::1', '::', '0:0:0:0:0:0:0:1'],
  'IPv6 unique local fc00::/7': ['fc00::1', 'fd12:3456:789a::1'],
  'IPv6 link-local fe80::/10': ['fe80::1', 'febf::1', 'fe80::1%eth0'],
  'IPv4-mapped IPv6': [
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::ffff:a9fe:a9fe',
    '::ffff:0.0.0.0',
  ],
  'NAT64 of a private address': ['64:ff9b::7f00:1', '64:ff9b::10.1.2.3'],
  'IPv6 multicast': ['ff02::1'],
};

const PUBLIC = [
  '93.184.216.34',
  '8.8.8.8',
  '100.63.255.255',
  '100.128.0.1',
  '172.32.0.1',
  '2606:4700::1111',
  '::ffff:8.8.8.8',
  '64:ff9b::808:808',
];

const resolving =
  (answers: Record<string, string[]>): Resolve =>
  async (host) => {
    const list = answers[host];
    if (!list) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

describe('webhook addresses', () => {
  for (const [kind, addresses] of Object.entries(REFUSED))
    it(`refuses ${kind}`, async () => {
      for (const address of addresses) {
        expect(isForbiddenAddress(address), address).toBe(true);
        // Behind a name that resolves to it…
        await expect(
          vetUrl(new URL('https://hooks.example.com/x'), {
            allowPrivate: false,
            resolve: resolving({ 'hooks.example.com': [address] }),
          }),
          address,
        ).rejects.toThrow(/loopback, private or link-local/);
        // …and as a literal in the URL (the zone index cannot be written in a URL).
        if (!address.includes('%')) {
          const host = address.includes(':') ? `[${address}]` : address;
          await expect(
            checkEndpointUrl(`http://${host}:8080/hook`, { allowPrivate: false }),
            address,
          ).rejects.toMatchObject({ code: 'validation_failed' });
        }
      }
    });

  it('takes public addresses', async () => {
    for (const address of PUBLIC) expect(isForbiddenAddress(address), address).toBe(false);
    const vetted = await vetUrl(new URL('https://hooks.example.com/x'), {
      allowPrivate: false,
      resolve: resolving({ 'hooks.example.com': ['93.184.216.34', '2606:4700::1111'] }),
    });
    expect(vetted).toEqual({ address: '93.184.216.34', family: 4 });
  });

  it('refuses a name when any of its addresses is private (all are checked)', async () => {
    await expect(
      vetUrl(new URL('https://mixed.example.com/'), {
        allowPrivate: false,
        resolve: resolving({ 'mixed.example.com': ['93.184.216.34', '10.0.0.5'] }),
      }),
    ).rejects.toThrow(/resolves to 10\.0\.0\.5/);
  });

  it('refuses obfuscated spellings of loopback (the URL parser normalises them first)', async () => {
    for (const url of [
      'http://0x7f.1/',
      'http://2130706433/',
      'http://0177.0.0.1/',
      'http://[::ffff:127.0.0.1]/',
      'http://[0:0::1]/',
    ])
      await expect(checkEndpointUrl(url, { allowPrivate: false }), url).rejects.toMatchObject({
        code: 'validation_failed',
      });
  });

  it('resolves names through the system resolver (localhost is loopback)', async () => {
    await expect(checkEndpointUrl('http://localhost:9/hook', { allowPrivate: false })).rejects.toThrow(
      /loopback, private or link-local/,
    );
    expect(await checkEndpointUrl('http://localhost:9/hook', { allowPrivate: true })).toBe(
      'http://localhost:9/hook',
    );
  });

  it('lets RELAYDESK_ALLOW_PRIVATE_WEBHOOKS through every address class, never other schemes', async () => {
    for (const address of Object.values(REFUSED)
      .flat()
      .filter((a) => !a.includes('%'))) {
      const host = address.includes(':') ? `[${address}]` : address;
      await expect(checkEndpointUrl(`http://${host}/`, { allowPrivate: true }), address).resolves.toMatch(
        /^http:/,
      );
    }
    for (const url of [
      'ftp://example.com/',
      'file:///etc/passwd',
      'gopher://127.0.0.1/',
      'javascript:alert(1)',
    ])
      await expect(checkEndpointUrl(url, { allowPrivate: true }), url).rejects.toMatchObject({
        code: 'validation_failed',
      });
  });

  it('refuses credentials, fragments, non-URLs and names that do not resolve', async () => {
    expect(() => parseWebhookUrl('https://user:pw@example.com/')).toThrow(/credentials/);
    expect(() => parseWebhookUrl('https://example.com/#x')).toThrow(/fragment/);
    expect(() => parseWebhookUrl('not a url')).toThrow(/not a URL/);
    const err = await checkEndpointUrl('https://nowhere.invalid/', {
      allowPrivate: false,
      resolve: resolving({}),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).details?.errors?.[0]).toMatchObject({ path: '/url' });
  });
});
