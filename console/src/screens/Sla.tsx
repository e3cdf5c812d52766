// SLA: the policies that give tickets their targets (per priority, with warning thresholds and
// escalations), and the business calendars they count time on (a week of opening hours and the
// holidays). Admins only (sla:manage). The tab is in the address (?tab=calendars).
import './admin-shared.css';
import './Sla.css';
import { Tab, TabList, TabPanel, Tabs } from 'react-aria-components';
import { useSearchParams } from 'react-router';
import { Page } from '../shell/Page.tsx';
import { Calendars } from './sla/Calendars.tsx';
import { Policies } from './sla/Policies.tsx';

export default function Sla() {
  const [params, setParams] = useSearchParams();
  const tab = params.get('tab') === 'calendars' ? 'calendars' : 'policies';
  return (
    <Page title="SLA" wide>
      <Tabs
        selectedKey={tab}
        onSelectionChange={(key) => setParams(key === 'calendars' ? { tab: 'calendars' } : {})}
      >
        <TabList aria-label="SLA" className="tabs">
          <Tab id="policies" className="tab">
            Policies
          </Tab>
          <Tab id="calendars" className="tab">
            Calendars
          </Tab>
        </TabList>
        <TabPanel id="policies" className="tab-panel">
          <Policies />
        </TabPanel>
        <TabPanel id="calendars" className="tab-panel">
          <Calendars />
        </TabPanel>
      </Tabs>
    </Page>
  );
}
