// Docker image references: grammar, normalisation and formatting (distribution/reference rules).
// (Placeholder type; the parser is being written.)

/** A parsed, normalised reference: docker.io/library/nginx:latest → domain docker.io, path library/nginx. */
export interface Reference {
  /** Registry host, with port when given: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  domain: string;
  /** Repository path inside the registry: `library/nginx`. */
  path: string;
  tag?: string;
  digest?: string;
}
