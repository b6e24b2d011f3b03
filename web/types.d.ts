// Types shared by the web app's modules that are not values of any module. Not served
// (the server and web-proxy.mjs skip .d.ts files); only `tsc` reads it.

interface Window {
  /** The room's test and debugging handle (call/room.js). */
  parlor: import("./call/room.js").ParlorHandle;
  /** The chat app's test and debugging handle (chat/handle.js). */
  parlorChat: import("./chat/handle.js").ParlorChatHandle;
}
