// People: the directory of agents and contacts (search, a person's addresses, identities, status,
// role and notification settings, merging, inviting agents) and the triage of identities other
// systems showed us that belong to nobody yet. Which tab and which person are in the address
// (?tab=unmapped, ?person=<id>) so that other screens can link here.
import './admin-shared.css';
import './People.css';
import { Tab, TabList, TabPanel, Tabs } from 'react-aria-components';
import { useSearchParams } from 'react-router';
import { Page } from '../shell/Page.tsx';
import { PersonDetail } from './people/Detail.tsx';
import { PeopleList } from './people/List.tsx';
import { Unmapped } from './people/Unmapped.tsx';

export default function People() {
  const [params, setParams] = useSearchParams();
  const tab = params.get('tab') === 'unmapped' ? 'unmapped' : 'people';
  const personId = params.get('person');
  return (
    <Page title="People" wide>
      <Tabs
        selectedKey={tab}
        onSelectionChange={(key) => setParams(key === 'unmapped' ? { tab: 'unmapped' } : {})}
      >
        <TabList aria-label="People" className="tabs">
          <Tab id="people" className="tab">
            Directory
          </Tab>
          <Tab id="unmapped" className="tab">
            Unmapped identities
          </Tab>
        </TabList>
        <TabPanel id="people" className="tab-panel">
          {personId ? <PersonDetail key={personId} id={personId} /> : <PeopleList />}
        </TabPanel>
        <TabPanel id="unmapped" className="tab-panel">
          <Unmapped />
        </TabPanel>
      </Tabs>
    </Page>
  );
}
