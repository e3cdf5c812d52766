import { SetPassword } from './SetPassword.tsx';

export default function Accept() {
  return <SetPassword kind="invitation" />;
}
