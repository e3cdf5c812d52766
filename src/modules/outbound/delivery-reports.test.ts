// What a delivery-status report means for the attempt it is about (pure: outbound.test.ts runs the
// reports through inbound and the ledger).
import { describe, expect, it } from 'vitest';
import type { RecipientStatus } from '../inbound/delivery-reports.ts';
import { bounceErrorCode, decideReport } from './delivery-reports.ts';

const recipient = (r: Partial<RecipientStatus> & Pick<RecipientStatus, 'action'>): RecipientStatus => ({
  finalRecipient: null,
  originalRecipient: null,
  status: null,
  diagnostic: null,
  ...r,
});

describe('bounceErrorCode', () => {
  it.each([
    ['5.1.1', 'invalid_recipient'],
    ['5.1.10', 'invalid_recipient'],
    ['5.2.2', 'permanent'],
    ['5.7.1', 'permanent'],
    ['4.4.7', 'transient'],
    [null, 'permanent'],
  ] as const)('%s is %s', (status, code) => {
    expect(bounceErrorCode(status)).toBe(code);
  });
});

describe('decideReport', () => {
  it('takes a plain bounce (nothing to read) as the destination failing', () => {
    expect(decideReport('carol@customer.test', null, 'i-1')).toMatchObject({
      verdict: 'bounced',
      errorCode: 'invalid_recipient',
    });
  });

  it('knows the destination by its Original-Recipient when an alias changed its Final-Recipient', () => {
    const verdict = decideReport(
      'Carol@Customer.test',
      [
        recipient({
          finalRecipient: 'carol.jones@mail.customer.test',
          originalRecipient: 'carol@customer.TEST',
          action: 'failed',
          status: '5.2.2',
          diagnostic: 'smtp; 552 5.2.2 mailbox full',
        }),
      ],
      'i-2',
    );
    expect(verdict).toEqual({
      verdict: 'bounced',
      errorCode: 'permanent',
      errorMessage:
        'Status: 5.2.2; Diagnostic-Code: smtp; 552 5.2.2 mailbox full (delivery-status report, inbound message i-2)',
    });
  });

  it('lets a failure for the destination outweigh another block saying delivered', () => {
    const verdict = decideReport(
      'carol@customer.test',
      [
        recipient({ finalRecipient: 'carol@customer.test', action: 'delivered' }),
        recipient({ finalRecipient: 'carol@customer.test', action: 'failed' }),
      ],
      'i-3',
    );
    expect(verdict).toMatchObject({ verdict: 'bounced', errorCode: 'permanent' });
  });

  it('changes nothing for expanded, nor for failures of other recipients', () => {
    expect(
      decideReport(
        'list@customer.test',
        [recipient({ finalRecipient: 'list@customer.test', action: 'expanded' })],
        'i',
      ),
    ).toEqual({ verdict: 'unchanged', reason: 'the report says expanded' });
    expect(
      decideReport(
        'carol@customer.test',
        [recipient({ finalRecipient: 'dave@customer.test', action: 'failed' })],
        'i',
      ),
    ).toEqual({ verdict: 'unchanged', reason: 'the report names other recipients only' });
  });
});
