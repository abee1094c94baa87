/**
 * Kubernetes label selectors, for the native harness's `list`.
 *
 * The host parses selectors with its own parser (crate `bosun-selector`);
 * this one accepts the same syntax so a test sees the objects the host would
 * return: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a` and
 * `!a`, joined by commas.
 */

const KEY = "[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?";
const VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

type Labels = Record<string, string>;
type Requirement = (labels: Labels) => boolean;

/** A selector that does not parse; the message is what the host would say. */
export class SelectorError extends Error {}

/** Parses `text` into a predicate; an empty selector matches everything. */
export function parse(text: string): (labels: Labels) => boolean {
  const requirements = split(text).map(requirement);
  return (labels) => requirements.every((r) => r(labels));
}

function split(text: string): string[] {
  // Commas inside `in (...)` lists do not separate requirements.
  const terms: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "(") depth += 1;
    else if (ch === ")") depth -= 1;
    if (ch === "," && depth === 0) {
      terms.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw new SelectorError(`unbalanced parentheses in selector ${JSON.stringify(text)}`);
  terms.push(current);
  const stripped = terms.map((t) => t.trim());
  if (stripped.length === 1 && stripped[0] === "") return [];
  if (stripped.some((t) => t === "")) throw new SelectorError(`empty requirement in selector ${JSON.stringify(text)}`);
  return stripped;
}

function requirement(term: string): Requirement {
  let m = new RegExp(`^!\\s*(${KEY})$`).exec(term);
  if (m) {
    const key = m[1]!;
    return (labels) => !(key in labels);
  }
  m = new RegExp(`^(${KEY})\\s+(in|notin)\\s+\\(([^()]*)\\)$`).exec(term);
  if (m) {
    const [key, op] = [m[1]!, m[2]!];
    const values = new Set(m[3]!.split(",").map((v) => value(v.trim(), term)));
    return op === "in"
      ? (labels) => key in labels && values.has(labels[key]!)
      : (labels) => !(key in labels) || !values.has(labels[key]!);
  }
  m = new RegExp(`^(${KEY})\\s*(==|!=|=)\\s*(.*)$`).exec(term);
  if (m) {
    const [key, op, wanted] = [m[1]!, m[2]!, value(m[3]!.trim(), term)];
    return op === "!=" ? (labels) => labels[key] !== wanted : (labels) => labels[key] === wanted;
  }
  if (new RegExp(`^${KEY}$`).test(term)) {
    return (labels) => term in labels;
  }
  throw new SelectorError(`cannot parse label selector requirement ${JSON.stringify(term)}`);
}

function value(text: string, term: string): string {
  if (text.length > 63 || !VALUE.test(text)) {
    throw new SelectorError(`invalid label value ${JSON.stringify(text)} in ${JSON.stringify(term)}`);
  }
  return text;
}
