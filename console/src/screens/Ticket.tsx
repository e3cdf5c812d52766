import { Page } from '../shell/Page.tsx';

export default function Ticket() {
  return (
    <Page title="Ticket">
      <p>…</p>
    </Page>
  );
}
