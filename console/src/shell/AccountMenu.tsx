// The account menu of the top bar (react-aria's menu). The layout loads it as its own chunk, so that
// the console's first screen does not wait for it.
import { Button, Menu, MenuItem, MenuTrigger, Popover, Separator } from 'react-aria-components';

export type AccountAction = 'two-factor' | 'help' | 'sign-out' | 'sign-out-everywhere';

export default function AccountMenu({
  name,
  onAction,
}: {
  name: string;
  onAction(action: AccountAction): void;
}) {
  return (
    <MenuTrigger>
      <Button className="button-plain account" aria-label={`Account: ${name}`}>
        {name}
      </Button>
      <Popover className="popover" placement="bottom end">
        <Menu className="menu" onAction={(key) => onAction(key as AccountAction)}>
          <MenuItem id="two-factor" className="menu-item">
            Two-factor sign-in
          </MenuItem>
          <MenuItem id="help" className="menu-item">
            Keyboard shortcuts
          </MenuItem>
          <Separator className="menu-separator" />
          <MenuItem id="sign-out" className="menu-item">
            Sign out
          </MenuItem>
          <MenuItem id="sign-out-everywhere" className="menu-item">
            Sign out everywhere
          </MenuItem>
        </Menu>
      </Popover>
    </MenuTrigger>
  );
}
