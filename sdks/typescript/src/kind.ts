/** Kubernetes kinds: what a module reconciles, owns and reads. */

/** Whether objects of a kind live in a namespace or at cluster scope. */
export type Scope = "namespaced" | "cluster";

/**
 * A Kubernetes resource kind: group, version, kind, plural and scope.
 *
 * Take built-in kinds from `kinds`; declare a custom resource's with
 * {@link customKind}, which derives the plural as kube-rs's
 * `#[derive(CustomResource)]` does, so a TypeScript module declares the same
 * kind as its Rust twin.
 */
export class Kind {
  constructor(
    readonly group: string,
    readonly version: string,
    readonly kind: string,
    readonly plural: string,
    readonly scope: Scope = "namespaced",
  ) {}

  /** `group/version`, or just `version` for the core group. */
  get apiVersion(): string {
    return this.group ? `${this.group}/${this.version}` : this.version;
  }

  /** True when the JSON object `obj` is of this kind. */
  isKindOf(obj: unknown): boolean {
    if (typeof obj !== "object" || obj === null) return false;
    const o = obj as { apiVersion?: unknown; kind?: unknown };
    return o.apiVersion === this.apiVersion && o.kind === this.kind;
  }

  toString(): string {
    return `${this.kind}.${this.apiVersion}`;
  }
}

/**
 * A custom resource's kind, with the plural derived from `kind` unless given.
 *
 * The host resolves kinds through API discovery and never trusts the plural
 * a module declares; it is derived here only so that `bosun inspect` shows
 * what the CRD most likely calls it.
 */
export function customKind(
  group: string,
  version: string,
  kind: string,
  options: { scope?: Scope; plural?: string } = {},
): Kind {
  return new Kind(group, version, kind, options.plural ?? pluralOf(kind), options.scope ?? "namespaced");
}

/** The plural kube-rs derives for `kind` (kube-derive's `to_plural`). */
export function pluralOf(kind: string): string {
  const word = kind.toLowerCase();
  if (word === "endpoints" || word === "endpointslices") return word;
  if (/(s|x|z|ch|sh)$/.test(word)) return `${word}es`;
  if (word.length > 1 && word.endsWith("y") && !"aeiou".includes(word[word.length - 2]!)) {
    return `${word.slice(0, -1)}ies`;
  }
  return `${word}s`;
}
