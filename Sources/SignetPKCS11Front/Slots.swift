import CSignetPKCS11Front
import SignetAgentProtocol

/// Slot ids and token flags: what the module says of a token the agent listed.
package enum Slots {
    /// A slot id that stays the same for a token across processes and restarts: an FNV-1a hash of its
    /// manufacturer, serial and model (the label may change), odd and below 2³¹; the next free odd id
    /// when `taken` says another token already holds it.
    package static func slotID(for entry: TokenEntry, taken: (CK_SLOT_ID) -> Bool) -> CK_SLOT_ID {
        var hash: UInt32 = 2_166_136_261
        for byte in (entry.manufacturer + "\u{0}" + entry.serial + "\u{0}" + entry.model).utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        var id = CK_SLOT_ID(hash & 0x7FFF_FFFF) | 1
        while taken(id) { id = (id &+ 2) & 0x7FFF_FFFF }
        return id
    }

    /// Whether two listings name the same token (the label may change between them).
    package static func sameToken(_ a: TokenEntry, _ b: TokenEntry) -> Bool {
        a.manufacturer == b.manufacturer && a.serial == b.serial && a.model == b.model
    }

    /// The token flags, Signet's lockout state and the card's own counter among them. The card's
    /// counter is the typed value the agent sends (`CardCounter`), never its words.
    ///
    /// | state | flags |
    /// |---|---|
    /// | Signet: a wrong code recorded; the card: a wrong code since the last good one | `CKF_USER_PIN_COUNT_LOW` |
    /// | Signet: one try left; the card: its final try | `CKF_USER_PIN_FINAL_TRY` (and `COUNT_LOW` for the card) |
    /// | Signet's lock; the card blocked | `CKF_USER_PIN_LOCKED` |
    ///
    /// - Parameter hostCanPrompt: whether the agent has somewhere to ask this host's user for a code (the shell's
    ///   `PromptPlace`); only then is the token a protected authentication path (issue 28, item 6).
    package static func tokenFlags(_ entry: TokenEntry, hostCanPrompt: Bool = true) -> CK_FLAGS {
        var flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_LOGIN_REQUIRED
        if hostCanPrompt { flags |= CKF_PROTECTED_AUTHENTICATION_PATH }
        if entry.failures > 0 { flags |= CKF_USER_PIN_COUNT_LOW }
        if entry.triesLeft == 1 { flags |= CKF_USER_PIN_FINAL_TRY }
        if entry.lockedSeconds != nil || entry.triesLeft == 0 { flags |= CKF_USER_PIN_LOCKED }
        switch entry.cardCounter {
        case .notReported, .ok: break
        case .countLow: flags |= CKF_USER_PIN_COUNT_LOW
        case .finalTry: flags |= CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY
        case .blocked: flags |= CKF_USER_PIN_LOCKED
        }
        return flags
    }
}
