// Human units from config: durations, sizes and listen addresses, including the malformed ones.
import { describe, expect, it } from 'vitest';
import { parseDuration, parseListen, parseSize } from '../../src/config/units.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1.5s', 1_500],
    ['0s', 0],
    [' 30s ', 30_000],
  ])('parses %j as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['ten', '', '10', '10 s', '10S', '-1s', '1w', 's', '1.s', '.5s', '5m30s', 'never'])(
    'returns undefined for %j',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );
});

describe('parseSize', () => {
  it.each([
    ['1024', 1024],
    ['0', 0],
    ['10B', 10],
    ['1KB', 1_000],
    ['200GB', 200e9],
    ['1TB', 1e12],
    ['1KiB', 1024],
    ['512MiB', 512 * 2 ** 20],
    ['2GiB', 2 * 2 ** 30],
    ['1TiB', 2 ** 40],
    ['1.5KiB', 1536],
    ['10 MB', 10e6],
    [' 64MiB ', 64 * 2 ** 20],
  ])('parses %j as %i bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'big', '10mb', '10 kib', '-1', '1PB', 'MiB', '1e3'])('returns undefined for %j', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });
});

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:5000', '127.0.0.1', 5000],
    ['0.0.0.0:80', '0.0.0.0', 80],
    ['localhost:65535', 'localhost', 65535],
    ['[::1]:5000', '::1', 5000],
    ['[::]:5000', '::', 5000],
    ['[fe80::1:2]:443', 'fe80::1:2', 443],
    [' 127.0.0.1:5000 ', '127.0.0.1', 5000],
  ])('parses %j as host %j port %i', (text, host, port) => {
    expect(parseListen(text)).toEqual({ host, port });
  });

  it.each([
    ['127.0.0.1:70000'],
    ['127.0.0.1:65536'],
    ['127.0.0.1:123456'],
    ['127.0.0.1'],
    ['127.0.0.1:'],
    [':5000'],
    ['::1:5000'],
    ['[::1]'],
    ['[]:5000'],
    ['[zz]:5000'],
    ['host name:5000'],
    ['127.0.0.1:-1'],
    ['127.0.0.1:50a'],
    [''],
  ])('returns undefined for %j', (text) => {
    expect(parseListen(text)).toBeUndefined();
  });
});
