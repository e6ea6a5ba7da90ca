// Pulls spent are what the rate-limit tracker saw upstream answer: manifest GETs with 200, not HEADs or errors.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics/metrics.js';
import { RateLimitTracker } from '../../src/upstream/rate-limit.js';

describe('pulls spent', () => {
  it('counts manifest GETs answered 200 and nothing else', () => {
    const tracker = new RateLimitTracker(0, new Metrics(new Registry()), pino({ level: 'silent' }));
    expect(tracker.pullsSpent).toBe(0);
    tracker.observe({}, { method: 'GET', status: 200 });
    tracker.observe({ 'ratelimit-remaining': '9;w=60' }, { method: 'GET', status: 200 });
    tracker.observe({}, { method: 'HEAD', status: 200 });
    tracker.observe({}, { method: 'GET', status: 404 });
    tracker.observe({}, { method: 'GET', status: 429 });
    tracker.observe({ 'ratelimit-remaining': '8;w=60' });
    expect(tracker.pullsSpent).toBe(2);
  });
});
