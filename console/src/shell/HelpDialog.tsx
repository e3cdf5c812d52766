// The keyboard shortcuts, opened with "?" or from the account menu.
import { Button, Dialog, Heading, Modal, ModalOverlay } from 'react-aria-components';
import { SHORTCUTS } from './shortcuts.ts';

export default function HelpDialog({
  isOpen,
  onOpenChange,
}: {
  isOpen: boolean;
  onOpenChange(open: boolean): void;
}) {
  const groups = [...new Set(SHORTCUTS.map((s) => s.where))];
  return (
    <ModalOverlay className="modal-overlay" isOpen={isOpen} onOpenChange={onOpenChange} isDismissable>
      <Modal className="modal">
        <Dialog className="dialog" aria-labelledby="shortcuts-title">
          <Heading slot="title" id="shortcuts-title">
            Keyboard shortcuts
          </Heading>
          {groups.map((where) => (
            <table key={where} className="shortcuts">
              <caption>{where}</caption>
              <thead>
                <tr>
                  <th scope="col">Keys</th>
                  <th scope="col">What they do</th>
                </tr>
              </thead>
              <tbody>
                {SHORTCUTS.filter((s) => s.where === where).map((s) => (
                  <tr key={s.keys}>
                    <td>
                      <kbd>{s.keys}</kbd>
                    </td>
                    <td>{s.does}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
          <div className="dialog-actions">
            <Button slot="close" className="button">
              Close
            </Button>
          </div>
        </Dialog>
      </Modal>
    </ModalOverlay>
  );
}
