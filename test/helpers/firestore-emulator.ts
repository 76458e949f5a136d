import { FirestoreServer } from '@firestore-emulator/server';
import { freePort } from './wait.js';


/**
 * A Firestore emulator (the @firestore-emulator/server implementation of Firestore's gRPC API)
 * in this process, on a free loopback port. Google clients reach it via FIRESTORE_EMULATOR_HOST,
 * which this sets for the current process.
 */
export async function startFirestoreEmulator(): Promise<{ host: string; stop: () => Promise<void> }> {
  const server = new FirestoreServer();
  const port = await freePort();
  await server.start(port);
  const host = `127.0.0.1:${port}`;
  process.env.FIRESTORE_EMULATOR_HOST = host;
  return {
    host,
    stop: async () => {
      server.stop();
    },
  };
}
