// Owns the throwaway PKI of the test control plane: a serving CA and the apiserver's serving cert,
// a client CA and client certs (CN = user, O = groups, as kube-apiserver reads them), and the
// service-account signing key. Made with the openssl CLI (EC P-256; RSA only for the SA key).
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0] ?? ''} failed: ${stderr || String(err)} (is openssl installed? run npm run setup)`, { cause: err });
  }
}

/** Escapes one RDN value for openssl's -subj syntax ("/CN=a/O=b"). */
function rdn(value: string): string {
  return value.replace(/[/\\+,=]/g, (c) => `\\${c}`);
}

export interface KeyPair {
  cert: string;
  key: string;
}

/** Self-signed CA, valid 7 days. Returns file paths. */
export async function createCa(dir: string, name: string, commonName: string): Promise<KeyPair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '7',
      '-keyout', pair.key, '-out', pair.cert, '-subj', `/CN=${rdn(commonName)}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  return pair;
}

export interface LeafOptions {
  commonName: string;
  /** Subject O= entries: Kubernetes groups for client certs. */
  organizations?: string[];
  /** subjectAltName entries, e.g. ['IP:127.0.0.1', 'DNS:localhost']. */
  altNames?: string[];
  usage: 'serverAuth' | 'clientAuth';
}

/** A leaf cert signed by `ca`, written as `<dir>/<name>.crt|key`. */
export async function createLeaf(dir: string, name: string, ca: KeyPair, opts: LeafOptions): Promise<KeyPair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const subject = [...(opts.organizations ?? []).map((o) => `/O=${rdn(o)}`), `/CN=${rdn(opts.commonName)}`].join('');
  await openssl(
    ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', pair.key, '-out', csr,
      '-subj', subject],
    dir,
  );
  const lines = [`extendedKeyUsage=${opts.usage}`, 'keyUsage=critical,digitalSignature,keyEncipherment'];
  if (opts.altNames?.length) lines.push(`subjectAltName=${opts.altNames.join(',')}`);
  await writeFile(ext, lines.join('\n') + '\n');
  await openssl(
    // A random serial, not -CAcreateserial: leaves signed in parallel by one CA would race on its .srl file.
    ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '7',
      '-out', pair.cert, '-extfile', ext],
    dir,
  );
  return pair;
}

/** RSA key for signing service-account tokens (kube-apiserver and kube-controller-manager share it). */
export async function createServiceAccountKey(dir: string): Promise<string> {
  const key = join(dir, 'sa.key');
  await openssl(['genrsa', '-out', key, '2048'], dir);
  return key;
}

/** A kubeconfig YAML with everything inlined (base64), so the file is self-contained. */
export async function renderKubeconfig(server: string, caCert: string, client: KeyPair, user: string): Promise<string> {
  const b64 = async (file: string) => (await readFile(file)).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: enclave-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${await b64(caCert)}`,
    'users:',
    `- name: ${JSON.stringify(user)}`,
    '  user:',
    `    client-certificate-data: ${await b64(client.cert)}`,
    `    client-key-data: ${await b64(client.key)}`,
    'contexts:',
    '- name: enclave-test',
    '  context:',
    '    cluster: enclave-test',
    `    user: ${JSON.stringify(user)}`,
    'current-context: enclave-test',
    '',
  ].join('\n');
}
