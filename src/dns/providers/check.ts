import { randomBytes } from 'node:crypto';
import type { Dns01Provider } from '../dns01-provider.ts';

// `tunn relay dns check`: one test TXT record written, waited for and deleted through the
// provider, exactly as a DNS-01 challenge would be, so a bad key, token, permission or server
// shows up now rather than at the first certificate.

export interface CheckStep {
  step: 'present' | 'visible' | 'cleanup';
  name: string;
  message: string;
}

/** Runs the check; `onStep` hears each step that worked. Throws the provider's own error on the first that fails (after trying to delete the record). */
export async function checkDnsProvider(provider: Dns01Provider, onStep: (s: CheckStep) => void = () => {}): Promise<void> {
  const name = `_tunn-dns-check.${provider.zone}`;
  const value = `tunn-dns-check-${randomBytes(9).toString('base64url')}`;
  await provider.present(name, value);
  onStep({ step: 'present', name, message: `wrote TXT ${name} through ${provider.label}` });
  try {
    await provider.waitVisible(name, value);
    onStep({ step: 'visible', name, message: `TXT ${name} is visible where the CA will look` });
  } finally {
    await provider.cleanup(name, value);
  }
  onStep({ step: 'cleanup', name, message: `deleted TXT ${name} (only the test value)` });
}
