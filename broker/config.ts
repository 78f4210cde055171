// The broker's configuration: the contract the operator renders (operator/resources/broker-config
// imports these types) and the broker validates at start. One YAML file plus the secret files it
// references. Validation errors name the path of the bad field and exit non-zero.
import type { AuthenticationConfig, AuthorizationConfig, AuthSourceConfig } from './auth/config.ts';

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss';
export type ClientAuthMode = 'none' | 'optional' | 'required';

export interface ListenerTlsConfig {
  certFile: string;
  keyFile: string;
  /** CA bundle for verifying client certificates. */
  clientCaFile?: string;
  clientAuth: ClientAuthMode;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export interface ListenerConfig {
  name: string;
  protocol: ListenerProtocol;
  host: string;
  port: number;
  /** WebSocket path for ws/wss (default "/mqtt"). */
  path?: string;
  tls?: ListenerTlsConfig;
  /** Anonymous access on this listener only (the embedded default config uses it). */
  allowAnonymous?: boolean;
}

export interface LimitsConfig {
  maxConnections: number;
  maxPacketSize: number;
  maxInflight: number;
  maxQueuedMessages: number;
  queueOverflow: 'drop-oldest' | 'drop-newest';
  maxTopicLength: number;
  maxTopicLevels: number;
  /** Messages per second per client; 0 = unlimited. */
  publishRatePerSecond: number;
  connectTimeoutMs: number;
  maxSessionExpirySeconds: number;
  maxKeepaliveSeconds: number;
  topicAliasMaximum: number;
}

export interface BrokerConfig {
  /** Tenant/deployment name, for logs and $SYS. */
  name: string;
  listeners: ListenerConfig[];
  admin: { host: string; port: number };
  limits: LimitsConfig;
  authentication: AuthenticationConfig;
  authorization: AuthorizationConfig;
  sources: Record<string, AuthSourceConfig>;
  logging: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'; accessLog: boolean };
  shutdown: { gracePeriodSeconds: number };
}

export type { AuthSourceConfig, AuthenticationConfig, AuthorizationConfig };
