// Modal dialogs of the admin screens (react-aria-components: focus kept inside, Escape closes, focus
// returns to what opened it): a plain one for forms, and a confirmation that says what will happen.
import type { ReactNode } from 'react';
import { Button, Dialog, Heading, Modal, ModalOverlay } from 'react-aria-components';

export function ModalDialog({
  isOpen,
  onOpenChange,
  title,
  children,
  wide = false,
}: {
  isOpen: boolean;
  onOpenChange(open: boolean): void;
  title: string;
  children: ReactNode;
  wide?: boolean;
}) {
  return (
    <ModalOverlay className="modal-overlay" isOpen={isOpen} onOpenChange={onOpenChange} isDismissable>
      <Modal className={wide ? 'modal modal-wide' : 'modal'}>
        <Dialog className="dialog">
          <Heading slot="title">{title}</Heading>
          {children}
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

/** Asks before something that cannot be undone; `children` says what it does. */
export function ConfirmDialog({
  isOpen,
  onOpenChange,
  title,
  children,
  confirmLabel,
  onConfirm,
  busy = false,
  error,
  danger = false,
}: {
  isOpen: boolean;
  onOpenChange(open: boolean): void;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  onConfirm(): void;
  busy?: boolean;
  error?: string | undefined;
  danger?: boolean;
}) {
  return (
    <ModalOverlay className="modal-overlay" isOpen={isOpen} onOpenChange={onOpenChange} isDismissable={!busy}>
      <Modal className="modal">
        <Dialog className="dialog" role="alertdialog">
          <Heading slot="title">{title}</Heading>
          {children}
          {error && (
            <p className="status status-error" role="alert">
              {error}
            </p>
          )}
          <div className="dialog-actions">
            <Button slot="close" className="button" isDisabled={busy}>
              Cancel
            </Button>
            <Button
              className={danger ? 'button-danger' : 'button-primary'}
              onPress={onConfirm}
              isDisabled={busy}
              autoFocus
            >
              {busy ? 'Working…' : confirmLabel}
            </Button>
          </div>
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}

/** The buttons at the foot of a form in a dialog: Cancel closes it, the other submits the form. */
export function DialogActions({ submitLabel, busy }: { submitLabel: string; busy: boolean }) {
  return (
    <div className="dialog-actions">
      <Button slot="close" className="button" isDisabled={busy}>
        Cancel
      </Button>
      <button type="submit" className="button-primary" disabled={busy}>
        {busy ? 'Saving…' : submitLabel}
      </button>
    </div>
  );
}
