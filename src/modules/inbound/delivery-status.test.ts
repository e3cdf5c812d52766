// Reading the message/delivery-status part of a bounce (RFC 3464), and finding it in the raw report.
import { describe, expect, it } from 'vitest';
import { parseDeliveryStatus } from './delivery-status.ts';
import { deliveryStatusText } from './mime.ts';

const report = (...lines: string[]) => lines.join('\r\n');

describe('parseDeliveryStatus', () => {
  it('reads each per-recipient block after the per-message one', () => {
    const text = report(
      'Reporting-MTA: dns; mx.example.org',
      'Arrival-Date: Mon, 2 Mar 2026 10:00:00 +0000',
      '',
      'Final-Recipient: rfc822; gone@example.org',
      'Original-Recipient: rfc822;Gone@Example.org',
      'Action: failed',
      'Status: 5.1.1',
      'Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected:',
      '    User unknown',
      '',
      'Final-Recipient: RFC822; <slow@example.org>',
      'action: Delayed',
      'status: 4.4.7 (delivery time expired)',
      'Will-Retry-Until: Fri, 6 Mar 2026 10:00:00 +0000',
      '',
    );
    expect(parseDeliveryStatus(text)).toEqual([
      {
        finalRecipient: 'gone@example.org',
        originalRecipient: 'Gone@Example.org',
        action: 'failed',
        status: '5.1.1',
        diagnostic: 'smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown',
      },
      {
        finalRecipient: 'slow@example.org',
        originalRecipient: null,
        action: 'delayed',
        status: '4.4.7',
        diagnostic: null,
      },
    ]);
  });

  it('reads every action RFC 3464 names, with LF line ends and extra blank lines too', () => {
    const actions = ['failed', 'delayed', 'delivered', 'relayed', 'expanded'];
    const text = [
      'Reporting-MTA: dns; mx.example.org',
      ...actions.flatMap((a, i) => ['', '', `Final-Recipient: rfc822; r${i}@example.org`, `Action: ${a}`]),
    ].join('\n');
    expect(parseDeliveryStatus(text).map((r) => [r.finalRecipient, r.action, r.status])).toEqual(
      actions.map((a, i) => [`r${i}@example.org`, a, null]),
    );
  });

  it('leaves out blocks it cannot act on: no Action, an unknown one, the per-message block', () => {
    const text = report(
      'Reporting-MTA: dns; mx.example.org',
      '',
      'Final-Recipient: rfc822; a@example.org',
      'Status: 5.0.0',
      '',
      'Final-Recipient: rfc822; b@example.org',
      'Action: bounced-twice',
      '',
      'Final-Recipient: x400; /C=US/O=Example/',
      'Action: failed',
      'Status: 5.1.1',
    );
    expect(parseDeliveryStatus(text)).toEqual([
      { finalRecipient: null, originalRecipient: null, action: 'failed', status: '5.1.1', diagnostic: null },
    ]);
  });

  it('answers nothing for text that is no delivery status, and keeps malformed status codes out', () => {
    expect(parseDeliveryStatus('')).toEqual([]);
    expect(parseDeliveryStatus('Your message could not be delivered.\r\n\r\nSorry.')).toEqual([]);
    expect(
      parseDeliveryStatus(report('Final-Recipient: rfc822; a@example.org', 'Action: failed', 'Status: 550')),
    ).toEqual([
      {
        finalRecipient: 'a@example.org',
        originalRecipient: null,
        action: 'failed',
        status: null,
        diagnostic: null,
      },
    ]);
  });

  it('keeps control characters out of what it answers', () => {
    const [r] = parseDeliveryStatus(
      report(
        'Final-Recipient: rfc822; a@example.org',
        'Action: failed',
        'Diagnostic-Code: smtp; 550\u0000 no\u0007',
      ),
    );
    expect(r!.diagnostic).toBe('smtp; 550 no');
  });
});

describe('deliveryStatusText', () => {
  const dsn = (contentType: string) =>
    Buffer.from(
      report(
        'From: MAILER-DAEMON@mx.example.org',
        `Content-Type: ${contentType}`,
        '',
        '--B',
        'Content-Type: text/plain',
        '',
        'Not delivered.',
        '--B',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; mx.example.org',
        '',
        'Final-Recipient: rfc822; gone@example.org',
        'Action: failed',
        '--B--',
        '',
      ),
    );

  it('is the message/delivery-status part of a multipart/report', () => {
    expect(deliveryStatusText(dsn('multipart/report; report-type=delivery-status;\r\n boundary="B"'))).toBe(
      report(
        'Reporting-MTA: dns; mx.example.org',
        '',
        'Final-Recipient: rfc822; gone@example.org',
        'Action: failed',
      ),
    );
  });

  it('is nothing in a message that is not a delivery report', () => {
    expect(deliveryStatusText(dsn('multipart/mixed; boundary="B"'))).toBeUndefined();
    expect(deliveryStatusText(Buffer.from('From: a@example.org\r\n\r\nHello\r\n'))).toBeUndefined();
  });
});
