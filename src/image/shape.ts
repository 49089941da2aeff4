// Small explicit shape checks for the JSON documents imgx reads from outside (indexes, manifests,
// configs; the registry's token answers and tag lists). JSON.parse accepts any JSON; what comes
// out is checked field by field before anything uses it, and a field of the wrong type is
// refused with its path (`config.Env[2] is a number, not a string`) rather than crashing later.
//
// Conventions, as Go's encoding/json reads these documents into typed structs (what Docker and
// containerd do): `null` is the same as an absent field; a field of another type is an error;
// fields imgx does not know are ignored and never walked, so a deeply nested value in one of them
// costs nothing. Messages name a value's kind, never the value itself (it may be huge or deep);
// strings are quoted through quotedText.
import { quotedText } from '../util/terminal-text.ts';

/** How a JSON value is named in a message. */
export function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'missing';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return `a ${typeof v}`;
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Makes the error for a document whose field `field` is wrong (`why` says how). */
export type ShapeFail = (field: string, why: string) => never;

/** The fields of one JSON object at `path` (`''` for the document itself). */
export class Fields {
  readonly obj: Record<string, unknown>;
  readonly path: string;
  readonly fail: ShapeFail;

  constructor(obj: Record<string, unknown>, path: string, fail: ShapeFail) {
    this.obj = obj;
    this.path = path;
    this.fail = fail;
  }

  /** Checks that `v` is an object and wraps it. */
  static of(v: unknown, path: string, fail: ShapeFail, want = 'an object'): Fields {
    if (!isObject(v)) fail(path || 'the document', v === undefined ? 'is missing' : `is ${kindOf(v)}, not ${want}`);
    return new Fields(v, path, fail);
  }

  /** The path of a field: `config.Env`, `manifests[2].platform`. */
  name(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  /** The field's raw value (undefined when absent or null). */
  get(key: string): unknown {
    const v = Object.hasOwn(this.obj, key) ? this.obj[key] : undefined;
    return v === null ? undefined : v;
  }

  /** True when the field is present and not null. */
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  private wrong(key: string, v: unknown, want: string): never {
    return this.fail(this.name(key), v === undefined ? 'is missing' : `is ${kindOf(v)}, not ${want}`);
  }

  string(key: string): string {
    const v = this.get(key);
    if (typeof v !== 'string') this.wrong(key, v, 'a string');
    return v;
  }

  optString(key: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.wrong(key, v, 'a string');
    return v;
  }

  optBoolean(key: string): boolean | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.wrong(key, v, 'true or false');
    return v;
  }

  /** A size or count: a non-negative safe integer. */
  size(key: string): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.fail(this.name(key), typeof v === 'number' ? `is ${v}, not a size (a non-negative integer)` : v === undefined ? 'is missing' : `is ${kindOf(v)}, not a size`);
    }
    return v;
  }

  list(key: string): unknown[] {
    const v = this.get(key);
    if (!Array.isArray(v)) this.wrong(key, v, 'a list');
    return v;
  }

  optList(key: string): unknown[] | undefined {
    return this.has(key) ? this.list(key) : undefined;
  }

  optStringList(key: string): string[] | undefined {
    const list = this.optList(key);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) {
      if (typeof list[i] !== 'string') this.fail(`${this.name(key)}[${i}]`, `is ${kindOf(list[i])}, not a string`);
    }
    return list as string[];
  }

  /** An object whose values are all strings (annotations, labels), as a fresh object. */
  optStringMap(key: string): Record<string, string> | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isObject(v)) this.wrong(key, v, 'an object');
    const entries = Object.entries(v);
    for (const [k, x] of entries) {
      if (typeof x !== 'string') this.fail(`${this.name(key)}[${quotedText(k, 60)}]`, `is ${kindOf(x)}, not a string`);
    }
    // fromEntries defines `__proto__` as a plain key, like JSON.parse did.
    return Object.fromEntries(entries) as Record<string, string>;
  }

  optObject(key: string): Fields | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isObject(v)) this.wrong(key, v, 'an object');
    return new Fields(v, this.name(key), this.fail);
  }

  object(key: string): Fields {
    const v = this.get(key);
    if (!isObject(v)) this.wrong(key, v, 'an object');
    return new Fields(v, this.name(key), this.fail);
  }
}
