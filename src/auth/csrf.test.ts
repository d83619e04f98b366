import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkFormToken, crossOriginPost, formToken } from './csrf.ts';

// Security property: a state-changing form post is taken only from the page's own origin, and
// a signed-in one only with the token of the session it acts on.

const ORIGIN = 'https://tunn.example.com';

describe('crossOriginPost', () => {
  const post = (origin: string[], secFetchSite: string[] = []) => crossOriginPost({ origin, secFetchSite }, ORIGIN);

  it('accepts the page\'s own origin in any spelling, and a client that sends neither header', () => {
    for (const o of ['https://tunn.example.com', 'HTTPS://Tunn.Example.COM', 'https://tunn.example.com:443']) assert.equal(post([o], ['same-origin']), undefined, o);
    assert.equal(post([], []), undefined);
    assert.equal(post([], ['none']), undefined);
  });

  it('refuses null, foreign, malformed and repeated origins, and same-site or cross-site fetches, saying why', () => {
    const cases: [string[], string[], RegExp][] = [
      [['null'], [], /without an origin/],
      [['https://grafana.tunn.example.com'], ['same-site'], /another site \(https:\/\/grafana/],
      [['http://tunn.example.com'], [], /another site/],
      [['https://tunn.example.com:8443'], [], /another site/],
      [['tunn.example.com'], [], /another site/],
      [['https://tunn.example.com', 'https://evil.example'], [], /another site/],
      [['https://tunn.example.com, https://evil.example'], [], /another site/],
      [[], ['same-site'], /Sec-Fetch-Site: same-site/],
      [[], ['cross-site'], /Sec-Fetch-Site: cross-site/],
      [['https://tunn.example.com'], ['cross-site'], /Sec-Fetch-Site: cross-site/],
    ];
    for (const [origin, site, why] of cases) assert.match(post(origin, site) ?? '', why, JSON.stringify([origin, site]));
  });
});

describe('form tokens', () => {
  it('bind a form to the session cookie it was shown with', () => {
    const a = 'A'.repeat(43);
    const b = 'B'.repeat(43);
    assert.equal(checkFormToken(a, formToken(a)), true);
    assert.equal(checkFormToken(b, formToken(a)), false);
    assert.equal(checkFormToken(a, formToken(a).slice(1)), false);
    assert.equal(checkFormToken(undefined, formToken(a)), false);
    assert.equal(checkFormToken(a, ''), false);
    assert.equal(checkFormToken(a, undefined), false);
    assert.notEqual(formToken(a), a, 'the token is not the cookie');
  });
});
