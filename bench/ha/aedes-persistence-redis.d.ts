// aedes-persistence-redis ships no types: the one call the bench makes.
declare module 'aedes-persistence-redis' {
  interface RedisPersistenceOptions {
    host?: string;
    port?: number;
    password?: string;
    db?: number;
  }
  const persistenceRedis: (options?: RedisPersistenceOptions) => unknown;
  export default persistenceRedis;
}
