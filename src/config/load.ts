// Config = defaults ← YAML file ← environment (an explicit list of REGMIRROR_* variables), validated once.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/** Environment variables that override config keys. Nothing else in the code reads process.env. */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: readonly string[] }> = [
  { env: 'REGMIRROR_LISTEN', path: ['listen'] },
  { env: 'REGMIRROR_DATA', path: ['dataDir'] },
  { env: 'REGMIRROR_UPSTREAM', path: ['upstream', 'url'] },
  { env: 'REGMIRROR_LOG_LEVEL', path: ['log', 'level'] },
  { env: 'REGMIRROR_TAG_TTL', path: ['tags', 'ttl'] },
  { env: 'REGMIRROR_HTTP_WORKERS', path: ['http', 'workers'] },
  { env: 'REGMIRROR_UPSTREAM_USERNAME', path: ['upstream', 'credentials', 'username'] },
  { env: 'REGMIRROR_UPSTREAM_PASSWORD', path: ['upstream', 'credentials', 'password'] },
];

/** A config that cannot be used; its message names the key, what was expected and what was found. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** YAML file; none means defaults plus environment. */
  file?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
  /** Programmatic overrides (tests, CLI flags), applied last. */
  overrides?: Record<string, unknown>;
}

export async function loadConfig(options: LoadOptions = {}): Promise<Config> {
  let raw: unknown = {};
  if (options.file !== undefined) {
    let text: string;
    try {
      text = await readFile(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config: cannot read ${options.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`config: ${options.file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError(`config: ${options.file} must hold a mapping of keys, found ${describe(raw)}`);
    }
    raw = expandVariables(raw, options.env ?? {}, []);
  }
  const merged = structuredClone(raw) as Record<string, unknown>;
  for (const { env, path } of ENV_OVERRIDES) {
    const value = options.env?.[env];
    if (value !== undefined && value !== '') setPath(merged, path, value);
  }
  deepAssign(merged, options.overrides ?? {});
  return parseConfig(merged);
}

export function parseConfig(input: unknown): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues, input));
  return deepFreeze(result.data);
}

function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string {
  return issues
    .map((issue) => {
      const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      if (issue.code === 'unrecognized_keys') {
        const prefix = issue.path.length > 0 ? `${issue.path.join('.')}.` : '';
        return `config: unknown key ${issue.keys.map((k) => `"${prefix}${k}"`).join(', ')}`;
      }
      if (issue.code === 'custom') return `config: ${key}: ${issue.message}`;
      // Never echo a secret back, even a malformed one.
      const found = issue.path.includes('credentials') ? 'a value (hidden)' : describe(getPath(input, issue.path));
      return `config: ${key}: ${issue.message.replace(/^Invalid input: /, '')}, found ${found}`;
    })
    .join('\n');
}

/**
 * `${NAME}` in a string of the file is the environment variable NAME, so that secrets (a registry token) stay
 * out of the file. A variable that is not set is an error naming the key, never an empty password.
 */
function expandVariables(value: unknown, env: Readonly<Record<string, string | undefined>>, path: readonly string[]): unknown {
  if (typeof value === 'string') {
    // `$${` is a literal `${`.
    return value.replace(/\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, escaped: string, name: string) => {
      if (escaped) return whole.slice(1);
      const found = env[name];
      if (found === undefined) throw new ConfigError(`config: ${path.join('.')}: environment variable ${name} is not set`);
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => expandVariables(item, env, [...path, String(i)]));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, expandVariables(child, env, [...path, key])]));
  }
  return value;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function getPath(value: unknown, path: readonly PropertyKey[]): unknown {
  let node = value;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** The mapping at target[key], created when absent; undefined when something else is there (left for the
 * schema to report, rather than silently replaced). */
function section(target: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  if (target[key] === undefined) target[key] = {};
  const value = target[key];
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node: Record<string, unknown> | undefined = target;
  for (const key of path.slice(0, -1)) {
    node = section(node, key);
    if (!node) return;
  }
  node[path[path.length - 1] as string] = value;
}

function deepAssign(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const child = section(target, key);
      if (child) deepAssign(child, value as Record<string, unknown>);
    } else if (value !== undefined) {
      target[key] = value;
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
