// Tag TTL rules, rate-limit headers and reserve, the circuit breaker, and where credentials may go.
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { tagTtlPolicy } from '../../src/cache/tag-policy.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { realmTrusted } from '../../src/upstream/auth.js';
import { CircuitBreaker } from '../../src/upstream/breaker.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import { parseRateLimitHeader, RateLimitTracker } from '../../src/upstream/rate-limit.js';

const minutes = (n: number) => n * 60_000;

describe('tag TTL rules', () => {
  const ttl = tagTtlPolicy({
    ttl: minutes(60),
    rules: [
      { match: '*:latest', ttl: minutes(1) },
      { match: 'alpine:*', ttl: minutes(5) },
      { match: 'myorg/*', ttl: minutes(30) },
    ],
  });

  it('takes the first matching rule, in order', () => {
    expect(ttl('library/alpine', 'latest')).toBe(minutes(1));
    expect(ttl('library/alpine', '3.19')).toBe(minutes(5));
  });

  it('matches official images by their short name and their library/ name', () => {
    expect(ttl('library/alpine', '3.20')).toBe(minutes(5));
    expect(tagTtlPolicy({ ttl: 1, rules: [{ match: 'library/nginx:*', ttl: 2 }] })('library/nginx', '1')).toBe(2);
  });

  it('lets * span slashes and falls back to the default', () => {
    expect(ttl('myorg/team/app', 'v1')).toBe(minutes(30));
    expect(ttl('someone/else', 'v1')).toBe(minutes(60));
  });

  it('treats regex characters in patterns literally', () => {
    const literal = tagTtlPolicy({ ttl: 1, rules: [{ match: 'a.b:1', ttl: 2 }] });
    expect(literal('library/a.b', '1')).toBe(2);
    expect(literal('library/axb', '1')).toBe(1);
  });
});

describe('rate-limit headers', () => {
  it('parses Docker Hub values with and without a window', () => {
    expect(parseRateLimitHeader('100;w=21600')).toEqual({ value: 100, window: 21600 });
    expect(parseRateLimitHeader('76')).toEqual({ value: 76 });
    expect(parseRateLimitHeader('junk')).toBeUndefined();
    expect(parseRateLimitHeader(undefined)).toBeUndefined();
  });

  it('conserves pulls at or under the reserve until the window has passed, and exposes the gauges', async () => {
    let now = 1_000_000;
    const metrics = new Metrics(new Registry());
    const tracker = new RateLimitTracker(5, metrics, pino({ level: 'silent' }), () => now);
    tracker.observe({ 'ratelimit-limit': '100;w=60', 'ratelimit-remaining': '6;w=60' });
    expect(tracker.conserving()).toBe(false);
    tracker.observe({ 'ratelimit-limit': '100;w=60', 'ratelimit-remaining': '5;w=60' });
    expect(tracker.conserving()).toBe(true);
    const text = await metrics.registry.metrics();
    // Labelled by registry since several registries can share one mirror (issue 13).
    expect(text).toMatch(/^regmirror_upstream_ratelimit_remaining(\{registry="docker.io"\})? 5$/m);
    expect(text).toMatch(/^regmirror_upstream_ratelimit_limit(\{registry="docker.io"\})? 100$/m);
    expect(text).toMatch(/^regmirror_upstream_ratelimit_window_seconds(\{registry="docker.io"\})? 60$/m);
    now += 61_000;
    expect(tracker.conserving()).toBe(false);
  });

  it('after a 429, knows how long pulls stay refused', () => {
    let now = 0;
    const tracker = new RateLimitTracker(0, new Metrics(new Registry()), pino({ level: 'silent' }), () => now);
    expect(tracker.limited(30)).toBe(30);
    expect(tracker.limitedForSeconds()).toBe(30);
    expect(tracker.conserving()).toBe(true);
    now += 31_000;
    expect(tracker.limitedForSeconds()).toBe(0);
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, fails fast while open, and lets one trial through after the cool-down', () => {
    let now = 0;
    const breaker = new CircuitBreaker(3, 10_000, new Metrics(new Registry()), () => now);
    breaker.failure();
    breaker.failure();
    expect(() => breaker.check()).not.toThrow();
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(() => breaker.check()).toThrow(UpstreamError);
    now += 10_001;
    expect(() => breaker.check()).not.toThrow(); // the trial
    expect(() => breaker.check()).toThrow(UpstreamError); // others wait for its outcome
    breaker.success();
    expect(breaker.state).toBe('closed');
  });

  it('re-opens for another cool-down when the trial fails', () => {
    let now = 0;
    const breaker = new CircuitBreaker(1, 1000, new Metrics(new Registry()), () => now);
    breaker.failure();
    now += 1001;
    breaker.check();
    breaker.failure();
    expect(breaker.state).toBe('open');
  });
});

describe('where credentials may go', () => {
  const hub = { upstream: 'https://registry-1.docker.io' };
  it("trusts the upstream's own origin and, for Docker Hub, auth.docker.io over TLS", () => {
    expect(realmTrusted(new URL('https://auth.docker.io/token'), hub)).toBe(true);
    expect(realmTrusted(new URL('https://registry-1.docker.io/token'), hub)).toBe(true);
  });
  it('refuses other domains, look-alikes and clear text', () => {
    expect(realmTrusted(new URL('https://evil.example/token'), hub)).toBe(false);
    expect(realmTrusted(new URL('https://docker.io.evil.example/token'), hub)).toBe(false);
    expect(realmTrusted(new URL('https://notdocker.io/token'), hub)).toBe(false);
    expect(realmTrusted(new URL('http://auth.docker.io/token'), hub)).toBe(false);
  });
  it('trusts a realm listed in config, and the exact origin for IP upstreams (not another port)', () => {
    expect(realmTrusted(new URL('https://auth.example/token'), { ...hub, trustedRealms: ['auth.example'] })).toBe(true);
    expect(realmTrusted(new URL('http://127.0.0.1:8/token'), { upstream: 'http://127.0.0.1:8' })).toBe(true);
    expect(realmTrusted(new URL('http://127.0.0.1:9/token'), { upstream: 'http://127.0.0.1:8' })).toBe(false);
    expect(realmTrusted(new URL('http://127.0.0.2:9/token'), { upstream: 'http://127.0.0.1:8' })).toBe(false);
  });
});
