// The contract between the broker and its auth chain. The broker calls these three methods and the
// optional ones; `broker/auth/chain.ts` implements them over the configured sources (builtin,
// postgres, mysql, redis, http, jwt, x509), and tests may pass the small hooks at the bottom of this file.

/** What the broker knows about a connecting client when it asks who they are. */
export interface ConnectAttempt {
  clientId: string;
  username: string | undefined;
  /** Raw password bytes from CONNECT; never logged. */
  password: Buffer | undefined;
  /** Remote IP address (no port). */
  peerHost: string;
  /** Name of the listener (from config) the client came in on. */
  listener: string;
  protocolVersion: 3 | 4 | 5;
  /** Present only when the TLS handshake verified a client certificate. */
  certificate: VerifiedCertificate | undefined;
}

export interface VerifiedCertificate {
  /** RFC 4514-ish subject string, e.g. "CN=device-1,O=Acme". */
  subject: string;
  commonName: string | undefined;
  dnsNames: string[];
  emails: string[];
  uris: string[];
  /** SHA-256 of the DER, lower-case hex. */
  sha256Fingerprint: string;
}

export type AclAction = 'publish' | 'subscribe';

/** One ACL rule as returned by an authentication source (JWT `acl` claim, HTTP response). */
export interface AclRule {
  permission: 'allow' | 'deny';
  action: AclAction | 'all';
  /** Topic filter; may contain placeholders and `eq ` prefix for literal match (EMQX). */
  topic: string;
  qos?: number[];
  retain?: boolean;
}

export type AuthenticationResult =
  | {
      outcome: 'allow';
      superuser: boolean;
      /** Rules attached to this client by the source that authenticated it; checked first. */
      acl: AclRule[] | undefined;
      /** When the credential stops being valid (JWT exp): the broker disconnects the client then. */
      expiresAt: Date | undefined;
      /** Name of the source that decided (for logs and metrics). */
      source: string;
      /**
       * The identity established by the source (x509: from the certificate), which becomes the
       * connection's username for authorization, ACL rules and `${username}` placeholders, as
       * EMQX's peer_cert_as_username does. Undefined = the CONNECT username stands.
       */
      identity?: string;
    }
  | {
      outcome: 'deny';
      /** 'bad-credentials' → CONNACK 0x86 (v5) / 4 (v3); 'not-authorized' → 0x87 / 5; 'unavailable' → 0x88 / 3. */
      reason: 'bad-credentials' | 'not-authorized' | 'unavailable';
      source: string | undefined;
    };

/** The identity the broker keeps for an authenticated connection; passed back on every check. */
export interface AuthenticatedClient {
  attempt: Omit<ConnectAttempt, 'password'>;
  superuser: boolean;
  acl: AclRule[] | undefined;
}

export interface AuthorizationRequest {
  action: AclAction;
  topic: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export interface AuthHook {
  authenticate(attempt: ConnectAttempt): Promise<AuthenticationResult>;
  /** true = allowed. Must never throw: a failing backend answers per its `onBackendFailure`. */
  authorize(client: AuthenticatedClient, request: AuthorizationRequest): Promise<boolean>;
  /**
   * Optional synchronous fast path (additive): the decision when it is already known without I/O
   * (superuser, a cached decision), else undefined → call authorize(). Lets the broker skip a
   * promise and a turn of the event loop per PUBLISH on cache hits.
   */
  authorizeSync?(client: AuthenticatedClient, request: AuthorizationRequest): boolean | undefined;
  /** Drop cached decisions (called when a source's data is reloaded). */
  clearCache?(): void;
  /**
   * Registers a listener called after a source reloaded its data (cached decisions are already
   * dropped then): the broker re-checks the subscriptions of connected clients against it.
   */
  onDataChanged?(listener: () => void): void;
  close(): Promise<void>;
}

/** Allows everyone to do everything: the embedded default config for a quick local try. */
export const allowAllHook: AuthHook = {
  async authenticate() {
    return { outcome: 'allow', superuser: false, acl: undefined, expiresAt: undefined, source: 'allow-all' };
  },
  async authorize() {
    return true;
  },
  async close() {},
};
