// LDAP distinguished names (RFC 4514), as far as deciding group membership needs them: parse a
// DN into its RDNs with values unescaped, compare DNs, and tell whether one lies under another.
// Comparison is by attribute type case-insensitively and by value as caseIgnoreMatch does
// (case and runs of spaces do not count), which is how directories match cn, ou and dc.
// Attribute types given as numeric OIDs ("2.5.4.3=…") compare only with the same OID.

/** One attribute type and value of an RDN: the type lower-cased, the value unescaped. */
export interface Ava {
  type: string;
  value: string;
}

/** A DN as its RDNs, leftmost (the entry's own name) first; each RDN has one or more AVAs. */
export type Dn = Ava[][];

const TYPE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)$/;

/** Parses an RFC 4514 string; undefined when it is not a DN. "" is the root DN ([]). */
export function parseDn(text: string): Dn | undefined {
  const dn: Dn = [];
  if (text.trim() === '') return dn;
  let rdn: Ava[] = [];
  let i = 0;
  for (;;) {
    // attributeType "="
    const eq = text.indexOf('=', i);
    if (eq < 0) return undefined;
    const type = text.slice(i, eq).trim().replace(/^oid\./i, '');
    if (!TYPE.test(type)) return undefined;
    i = eq + 1;
    // attributeValue: escaped pairs, or a #hexstring; unescaped leading/trailing spaces do not count.
    const bytes: number[] = [];
    let lastSignificant = 0;
    while (i < text.length && text[i] === ' ') i++;
    while (i < text.length && text[i] !== ',' && text[i] !== '+') {
      const ch = String.fromCodePoint(text.codePointAt(i)!);
      if (ch === '\\') {
        const hex = text.slice(i + 1, i + 3);
        if (/^[0-9a-fA-F]{2}$/.test(hex)) {
          bytes.push(parseInt(hex, 16));
          i += 3;
        } else if (i + 1 < text.length && ' "#+,;<=>\\'.includes(text[i + 1]!)) {
          bytes.push(text.charCodeAt(i + 1));
          i += 2;
        } else return undefined;
        lastSignificant = bytes.length;
        continue;
      }
      if (ch === '"' || ch === ';' || ch === '<' || ch === '>') return undefined;
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
      if (ch !== ' ') lastSignificant = bytes.length;
      i += ch.length;
    }
    const value = Buffer.from(bytes.slice(0, lastSignificant)).toString('utf8');
    if (value === '') return undefined;
    rdn.push({ type: type.toLowerCase(), value });
    if (i >= text.length || text[i] === ',') {
      dn.push(rdn);
      rdn = [];
      if (i >= text.length) return dn;
    }
    i++;
  }
}

function normalValue(v: string): string {
  return v.trim().replace(/\s+/g, ' ').toLowerCase();
}

function normalRdn(rdn: Ava[]): string {
  return rdn
    .map((a) => `${a.type}=${normalValue(a.value)}`)
    .sort()
    .join('+');
}

/** Whether `dn` lies strictly under `base` (a descendant, not the base itself). */
export function isUnder(dn: Dn, base: Dn): boolean {
  if (dn.length <= base.length) return false;
  const offset = dn.length - base.length;
  return base.every((rdn, k) => normalRdn(rdn) === normalRdn(dn[offset + k]!));
}

/** The value of a DN's leftmost RDN (its first AVA): "cn=R\,D,ou=g" → "R,D". */
export function rdnValue(dn: Dn): string | undefined {
  return dn[0]?.[0]?.value.trim() || undefined;
}
