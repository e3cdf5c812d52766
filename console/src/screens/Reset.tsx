import { SetPassword } from './SetPassword.tsx';

export default function Reset() {
  return <SetPassword kind="reset" />;
}
