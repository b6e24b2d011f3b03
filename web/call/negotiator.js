// @ts-check
// Negotiation: the offer/answer exchanges of the room's one RTCPeerConnection. The client
// publishes with its own offers and receives through the server's offers. When both offer at
// once the client is the impolite side: it ignores the server's offer, and the server rolls
// its own back, answers the client and then offers again (protocol §6.5).

/** @typedef {import("./signal.js").Signal} Signal */

/** After ignoring a server offer during ours, how long to wait for its fresh replacement. */
const RESYNC_AFTER_MS = 2_000;

/**
 * Runs the offer/answer exchanges of one RTCPeerConnection one at a time, following the
 * impolite side's rules of protocol §6.5.
 *
 * `hooks`:
 *  - describe(): the PublishTrack list for a client offer, each with its `pub`
 *  - onPublished(pub, trackId): the server's answer named a newly published track
 *  - onServerTracks(tracks): the {mid, track_id} list of a server offer, before it is applied
 *  - onChanged(): an exchange completed
 *  - onError(message): an exchange failed in a way the user should hear about
 */
export class Negotiator {
  /**
   * @param {RTCPeerConnection} pc
   * @param {Signal} signal
   * @param {{describe: () => any[], onPublished: (pub: any, trackId: string) => void,
   *   onServerTracks: (tracks: any[]) => void, onChanged: () => void,
   *   onError: (message: string) => void}} hooks
   */
  constructor(pc, signal, hooks) {
    this.pc = pc;
    this.signal = signal;
    this.hooks = hooks;
    /** @type {Promise<any>} */
    this.chain = Promise.resolve();
    /** Client offers queued or awaiting the server's reply; server offers are ignored then. */
    this.offersOutstanding = 0;
    /** A server offer was ignored during one of ours (rule 4). */
    this.ignoredOffer = false;
    /** `seq` of the answer to our latest offer: server offers before it are stale (rule 3). */
    this.lastAnswerSeq = 0;
    this.lastServerOfferSeq = 0;
    this.closed = false;
  }

  close() {
    this.closed = true;
  }

  /**
   * @template T
   * @param {() => Promise<T>} job
   * @returns {Promise<T | undefined>}
   */
  #enqueue(job) {
    const run = this.chain.then(() => (this.closed ? undefined : job()));
    this.chain = run.catch(() => {});
    return run;
  }

  /**
   * Makes a client offer: runs `prepare` (which adds or stops transceivers) when it is this
   * offer's turn, then offers and applies the answer. Rejects on an `error` reply, after
   * rolling the offer back.
   * @param {() => void} [prepare]
   */
  offer(prepare) {
    this.offersOutstanding += 1;
    let counted = true;
    const replied = () => {
      if (counted) this.offersOutstanding -= 1;
      counted = false;
    };
    let ok = false;
    return this.#enqueue(async () => {
      const { pc } = this;
      try {
        prepare?.();
        await pc.setLocalDescription(await pc.createOffer());
        // Mids exist only now, after setLocalDescription.
        const described = this.hooks.describe();
        const tracks = described.map(({ pub, ...track }) => track);
        let reply;
        try {
          reply = await this.signal.request("offer", { sdp: pc.localDescription.sdp, tracks });
          this.lastAnswerSeq = reply.seq ?? 0;
        } finally {
          // From here on a server offer was sent after the server handled ours (rule 2).
          replied();
        }
        if (this.closed) return;
        await pc.setRemoteDescription({ type: "answer", sdp: reply.d.sdp });
        for (const { mid, track_id } of reply.d.tracks ?? []) {
          const entry = described.find((t) => t.mid === mid);
          if (entry) this.hooks.onPublished(entry.pub, track_id);
        }
        ok = true;
      } catch (error) {
        replied();
        if (!this.closed && pc.signalingState === "have-local-offer") {
          await pc.setLocalDescription({ type: "rollback" }).catch(() => {});
        }
        throw error;
      } finally {
        if (!this.closed) {
          this.hooks.onChanged();
          this.#afterOwnOffer(ok);
        }
      }
    });
  }

  /**
   * Rule 4: a server offer we ignored must not stay pending on the server. If our offer was
   * refused the server may still hold it; if it was answered, a fresh server offer should
   * follow. Either way a no-change offer of ours resolves it.
   * @param {boolean} ok
   */
  #afterOwnOffer(ok) {
    if (!this.ignoredOffer || this.offersOutstanding > 0) return;
    this.ignoredOffer = false;
    const resync = () => {
      if (this.closed || this.offersOutstanding > 0) return;
      if (!this.pc.getTransceivers().some((t) => t.mid != null)) return; // nothing to offer
      this.offer().catch((error) => console.warn("parlor: resync offer failed", error));
    };
    if (!ok) {
      resync();
      return;
    }
    const answerSeq = this.lastAnswerSeq;
    setTimeout(() => {
      if (this.lastServerOfferSeq <= answerSeq) resync();
    }, RESYNC_AFTER_MS);
  }

  /**
   * A server `offer` frame: answers it unless the rules of protocol §6.5 say to ignore it.
   * @param {any} frame
   */
  serverOffer(frame) {
    const d = frame.d;
    this.lastServerOfferSeq = Math.max(this.lastServerOfferSeq, frame.seq ?? 0);
    if (this.offersOutstanding > 0) {
      // Rule 2: ours goes first; the server rolls this one back when ours arrives.
      console.debug(`parlor: ignoring server offer ${d.offer_id}: ours goes first`);
      this.ignoredOffer = true;
      return;
    }
    this.#enqueue(async () => {
      const { pc } = this;
      if ((frame.seq ?? 0) < this.lastAnswerSeq || pc.signalingState !== "stable") {
        console.debug(`parlor: ignoring stale server offer ${d.offer_id}`); // rules 2 and 3
        return;
      }
      this.hooks.onServerTracks(d.tracks ?? []);
      await pc.setRemoteDescription({ type: "offer", sdp: d.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      if (this.closed) return;
      this.signal
        .request("answer", { offer_id: d.offer_id, sdp: pc.localDescription.sdp })
        .catch((error) => {
          // bad_request: superseded; invalid_sdp: the server offers again. Either way its
          // next offer sets things right.
          console.warn(`parlor: answer to server offer ${d.offer_id} refused:`, error.message);
        });
      this.hooks.onChanged();
    }).catch(async (error) => {
      if (this.closed) return;
      console.error("parlor: could not apply the server's offer", error);
      if (this.pc.signalingState === "have-remote-offer") {
        await this.pc.setRemoteDescription({ type: "rollback" }).catch(() => {});
      }
      this.hooks.onError(`Could not receive media: ${error.message}`);
    });
  }
}
