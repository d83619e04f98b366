import type { RequestLogEntry, StreamWatch } from '../forward.ts';
import type { Target } from '../target.ts';
import { listenOn, type InspectAddress } from './address.ts';
import { captureWatch } from './capture.ts';
import { createInspectorServer } from './server.ts';
import { InspectorStore } from './store.ts';

// The agent's inspector: a store of captured requests, the capture that fills it, and the
// page and API on loopback that show and replay them.

export { parseInspectAddress, type InspectAddress } from './address.ts';
export { InspectorStore } from './store.ts';

export interface InspectorOptions {
  address: InspectAddress;
  targets: Target[];
  verifyTargetTls: boolean;
  showSecrets: boolean;
  store?: InspectorStore;
  secret?: string;
  maxEventBacklog?: number;
}

export interface Inspector {
  store: InspectorStore;
  /** The page's address with the per-run secret in the fragment (#token=…: never sent to a server). */
  url: string;
  /** The address without the secret, for messages. */
  origin: string;
  secret: string;
  /** The watch for one forwarded connection of tunnel `index`. */
  watch(index: number, tunnel: () => string, clientIp: string, onRequest?: (e: RequestLogEntry) => void): StreamWatch;
  close(): Promise<void>;
}

export async function startInspector(o: InspectorOptions): Promise<Inspector> {
  const store = o.store ?? new InspectorStore();
  const s = createInspectorServer({ store, targets: o.targets, verifyTargetTls: o.verifyTargetTls, showSecrets: o.showSecrets, secret: o.secret, maxEventBacklog: o.maxEventBacklog });
  const port = await listenOn(s.server, o.address);
  s.bind(o.address.host, port);
  const origin = `http://${o.address.host.includes(':') ? `[${o.address.host}]` : o.address.host}:${port}`;
  return {
    store,
    url: `${origin}/#token=${s.secret}`,
    origin,
    secret: s.secret,
    watch: (tunnelIndex, tunnel, clientIp, onRequest) => captureWatch({ store, tunnel, tunnelIndex, clientIp, onRequest }),
    close: () =>
      new Promise((resolve) => {
        s.server.closeAllConnections();
        s.server.close(() => resolve());
      }),
  };
}
