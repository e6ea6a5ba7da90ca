// A client's share of the upstream pulls (issue 14, `rateLimit.perClient`): counted per address and window,
// refused with 429 and Retry-After past it, bounded in memory whatever addresses clients use.
import { describe, expect, it } from 'vitest';
import { PullBudget } from '../../src/cache/pull-budget.js';
import { RegistryError } from '../../src/registry/errors.js';

describe('PullBudget', () => {
  it('lets each address spend its pulls per window, then answers 429 with the seconds to the window end', () => {
    let now = 1_000_000;
    const budget = new PullBudget({ pulls: 2, window: 60_000 }, () => now);
    budget.take('10.0.0.1');
    budget.take('10.0.0.1');
    budget.take('10.0.0.2'); // another client's share is its own
    now += 15_000;
    let refused: unknown;
    try {
      budget.take('10.0.0.1');
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(RegistryError);
    expect(refused).toMatchObject({ code: 'TOOMANYREQUESTS', status: 429, headers: { 'retry-after': '45' } });
    now += 45_000; // the window has ended: a new one starts
    expect(() => budget.take('10.0.0.1')).not.toThrow();
  });

  it('stays bounded when clients come from very many addresses', () => {
    const budget = new PullBudget({ pulls: 1, window: 60_000 });
    for (let i = 0; i < 150_000; i++) budget.take(`addr-${i}`);
    // The oldest addresses were forgotten (a fresh share), the newest are still counted.
    expect(() => budget.take('addr-0')).not.toThrow();
    expect(() => budget.take('addr-149999')).toThrow(RegistryError);
  });
});
