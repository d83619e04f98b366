// Where DNS-01 TXT records are written (DESIGN.md decision 8): the relay's own zone (served by
// its DNS server), an RFC 2136 server (src/dns/providers/rfc2136.ts) or the Cloudflare API
// (src/dns/providers/cloudflare.ts). The ACME DNS-01 solver (src/acme/dns01.ts) builds the
// record names and calls present → waitVisible → (validation) → cleanup.

/**
 * A DNS-01 provider. Contract:
 * - Implementations MUST be safe for concurrent use and MUST keep several values on one name:
 *   a wildcard and its apex are validated at once at the same `_acme-challenge` name.
 * - cleanup(name, value) MUST remove only that value, never the other values of the name.
 * - waitVisible(name, value) resolves once the value can be seen where the CA will look (not
 *   after a fixed sleep), and throws with what was asked of whom when it cannot be seen in time.
 * - Errors say what was being done and what to do; they never contain a credential.
 */
export interface Dns01Provider {
  /** The relay's zone: challenge names are built beneath it (`<acme-id>._acme.<zone>`). */
  readonly zone: string;
  /** Who writes the records, for messages: "the relay's DNS server", "RFC 2136 server 10.0.0.53:53", "Cloudflare". */
  readonly label: string;
  present(name: string, value: string): Promise<void>;
  cleanup(name: string, value: string): Promise<void>;
  waitVisible(name: string, value: string): Promise<void>;
}
