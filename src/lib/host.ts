/**
 * The one host-name normaliser: DNS names compare case-insensitively and a trailing root dot names the same host
 * ("Grafana.Example.COM." is "grafana.example.com"). Every comparison of a host, SNI or domain goes through this.
 */
export function normalizeHost(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}
