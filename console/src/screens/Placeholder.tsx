// A screen that is listed but not built yet: its name, so that the navigation and its tests hold.
import type { ComponentType } from 'react';
import { Page } from '../shell/Page.tsx';

export function placeholder(title: string): ComponentType {
  const Screen = () => (
    <Page title={title}>
      <p>This screen is not available in this version of the console yet.</p>
    </Page>
  );
  Screen.displayName = `Placeholder(${title})`;
  return Screen;
}
