// @ts-check
// Parlor chat app (/chat): the page's entry. The app itself is chat/ (chat/app.js first);
// its voice channels are rooms of call/, the same code as the room page's.

import { startCall } from "./call/room.js";
import { createChatApp, startChat } from "./chat/app.js";
import { applyTheme } from "./shared/theme.js";

applyTheme();
startChat(createChatApp(startCall()));
