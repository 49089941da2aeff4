// WWW-Authenticate parsing (RFC 9110 §11.6.1): one header may carry several challenges, each a
// scheme and comma-separated params whose values are tokens or quoted strings (commas allowed inside).

export interface Challenge {
  /** Lower-cased scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Params with lower-cased names: realm, service, scope, error, … */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseChallenges(h));
  const s = header;
  let i = 0;
  const out: Challenge[] = [];
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && TOKEN.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const quoted = () => {
    i++; // opening quote
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i++];
    }
    i++; // closing quote (or end)
    return v;
  };
  // Is the text at i a param (`name =`) rather than the next challenge's scheme?
  const paramAhead = () => {
    const save = i;
    token();
    ws();
    const isParam = s[i] === '=' && s[i + 1] !== '=';
    i = save;
    return isParam;
  };

  while (i < s.length) {
    while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= s.length) break;
    const scheme = token();
    if (!scheme) {
      i++; // garbage: skip a character
      continue;
    }
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    ws();
    // token68 form (`Negotiate abc==`): keep it whole under the empty name.
    const t68 = /^[A-Za-z0-9\-._~+/]+=*/.exec(s.slice(i));
    if (t68 && !paramAhead() && (i + t68[0].length >= s.length || /^[\s,]/.test(s.slice(i + t68[0].length)))) {
      ch.params[''] = t68[0];
      i += t68[0].length;
    }
    for (;;) {
      ws();
      while (s[i] === ',') {
        i++;
        ws();
      }
      if (i >= s.length || !paramAhead()) break;
      const name = token().toLowerCase();
      ws();
      i++; // '='
      ws();
      ch.params[name] = s[i] === '"' ? quoted() : token();
    }
  }
  return out;
}

/** The challenge imgx answers: Bearer before Basic; undefined when neither is offered. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}
