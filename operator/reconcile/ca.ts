// Where the per-tenant CA lives: a Secret in the operator's namespace (tenants have no access there).
export function caSecretName(tenantNamespace: string): string {
  return `enclave-ca-${tenantNamespace}`.slice(0, 253);
}
