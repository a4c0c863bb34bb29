// Checks that the renderer page's CSP meta tag is the contract's RENDERER_CSP_META (the header variant is checked in
// the shell and server tests). Reads renderer/index.html from the source tree; does not need a build.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { RENDERER_CSP_HEADER, RENDERER_CSP_META } from '../../electron/core/api/contract.js';

test('renderer/index.html carries exactly the contract CSP in its meta tag', () => {
  // Tests run from the repo root (scripts/test.mjs), wherever tsc put the compiled file.
  const html = readFileSync('renderer/index.html', 'utf8');
  const m = /<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html);
  assert.ok(m, 'CSP meta tag present');
  assert.equal(m[1], RENDERER_CSP_META);
});

test('the CSP allows no inline or eval script and only loopback WebSockets', () => {
  for (const csp of [RENDERER_CSP_META, RENDERER_CSP_HEADER]) {
    assert.match(csp, /(^|; )script-src 'self'(;|$)/);
    assert.match(csp, /(^|; )default-src 'self'(;|$)/);
    assert.match(csp, /(^|; )connect-src 'self' ws:\/\/127\.0\.0\.1:\*(;|$)/);
    assert.match(csp, /(^|; )object-src 'none'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|(^|\s)\*(\s|;|$)|https?:|blob:/);
  }
  assert.doesNotMatch(RENDERER_CSP_META, /frame-ancestors/, 'ignored (with a console error) in a meta tag');
  assert.match(RENDERER_CSP_HEADER, /frame-ancestors 'none'/);
});
