#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Module
import SignetAgentProtocol
import SignetCore

// The PKCS#11 functions of libsignet-pkcs11.so (module.c lists them). Each checks its
// arguments, works on `ModuleState` under its lock, and makes at most one agent request,
// with no lock held. See docs/pkcs11-module.md.

/// Runs `body` with the module's state, or answers `CKR_CRYPTOKI_NOT_INITIALIZED`.
@inline(__always)
private func withModule(_ body: (ModuleState) throws -> CK_RV) -> CK_RV {
    guard let state = Module.state else { return CKR_CRYPTOKI_NOT_INITIALIZED }
    do {
        return try body(state)
    } catch let error as ModuleError {
        return error.rv
    } catch {
        return CKR_GENERAL_ERROR
    }
}

/// Writes `text` into a fixed-size, blank-padded PKCS#11 text field (cut at a character boundary).
private func pad<T>(_ field: inout T, _ text: String) {
    withUnsafeMutableBytes(of: &field) { buffer in
        buffer.initializeMemory(as: UInt8.self, repeating: 0x20)
        var used = 0
        for character in text {
            let bytes = Array(String(character).utf8)
            guard used + bytes.count <= buffer.count else { break }
            for byte in bytes { buffer[used] = byte; used += 1 }
        }
    }
}

/// Copies `bytes` out the PKCS#11 way: the length always, the bytes when there is room.
private func output(_ bytes: [UInt8], to pointer: UnsafeMutablePointer<UInt8>?, length: UnsafeMutablePointer<CK_ULONG>) -> CK_RV {
    guard let pointer else {
        length.pointee = CK_ULONG(bytes.count)
        return CKR_OK
    }
    guard length.pointee >= CK_ULONG(bytes.count) else {
        length.pointee = CK_ULONG(bytes.count)
        return CKR_BUFFER_TOO_SMALL
    }
    bytes.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: bytes.count) }
    length.pointee = CK_ULONG(bytes.count)
    return CKR_OK
}

private func bytes(_ pointer: UnsafeMutablePointer<UInt8>?, _ count: CK_ULONG) -> [UInt8] {
    guard let pointer, count > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: pointer, count: Int(count)))
}

private let version = CK_VERSION(major: 0, minor: 1)

// MARK: General

@_cdecl("signet_C_Initialize")
func signet_C_Initialize(_ arguments: UnsafeMutableRawPointer?) -> CK_RV {
    if let arguments {
        let args = arguments.load(as: CK_C_INITIALIZE_ARGS.self)
        guard args.pReserved == nil else { return CKR_ARGUMENTS_BAD }
        // Either all the mutex callbacks or none. With or without CKF_OS_LOCKING_OK the module uses its
        // own pthread locks: it creates no threads and holds no lock across I/O, so the caller's are not needed.
        let given = [args.CreateMutex != nil, args.DestroyMutex != nil, args.LockMutex != nil, args.UnlockMutex != nil]
        guard given.allSatisfy({ $0 }) || given.allSatisfy({ !$0 }) else { return CKR_ARGUMENTS_BAD }
    }
    return Module.initialize()
}

@_cdecl("signet_C_Finalize")
func signet_C_Finalize(_ reserved: UnsafeMutableRawPointer?) -> CK_RV {
    guard reserved == nil else { return CKR_ARGUMENTS_BAD }
    return Module.finalize()
}

@_cdecl("signet_C_GetInfo")
func signet_C_GetInfo(_ info: UnsafeMutablePointer<CK_INFO>?) -> CK_RV {
    withModule { _ in
        guard let info else { return CKR_ARGUMENTS_BAD }
        info.pointee.cryptokiVersion = CK_VERSION(major: 2, minor: 40)
        pad(&info.pointee.manufacturerID, "Signet")
        info.pointee.flags = 0
        pad(&info.pointee.libraryDescription, "Signet agent (signet-agent)")
        info.pointee.libraryVersion = version
        return CKR_OK
    }
}

// MARK: Slots and tokens

@_cdecl("signet_C_GetSlotList")
func signet_C_GetSlotList(_ tokenPresent: CK_BBOOL, _ list: UnsafeMutablePointer<CK_SLOT_ID>?, _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard let count else { return CKR_ARGUMENTS_BAD }
        // The size query reads the list again; the call that fills it right after uses the same answer.
        state.refreshTokens(force: list == nil)
        let ids = state.lock.withLock { inner in
            inner.slots.values.filter { tokenPresent == 0 || $0.present }.map(\.id).sorted()
        }
        guard let list else {
            count.pointee = CK_ULONG(ids.count)
            return CKR_OK
        }
        guard count.pointee >= CK_ULONG(ids.count) else {
            count.pointee = CK_ULONG(ids.count)
            return CKR_BUFFER_TOO_SMALL
        }
        for (index, id) in ids.enumerated() { list[index] = id }
        count.pointee = CK_ULONG(ids.count)
        return CKR_OK
    }
}

@_cdecl("signet_C_GetSlotInfo")
func signet_C_GetSlotInfo(_ slotID: CK_SLOT_ID, _ info: UnsafeMutablePointer<CK_SLOT_INFO>?) -> CK_RV {
    withModule { state in
        guard let info else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        guard let slot = state.lock.withLock({ $0.slots[slotID] }) else { return CKR_SLOT_ID_INVALID }
        pad(&info.pointee.slotDescription, "Signet: \(slot.entry.label)")
        pad(&info.pointee.manufacturerID, "Signet")
        info.pointee.flags = CKF_REMOVABLE_DEVICE | (slot.present ? CKF_TOKEN_PRESENT : 0) | (slot.entry.software ? 0 : CKF_HW_SLOT)
        info.pointee.hardwareVersion = version
        info.pointee.firmwareVersion = version
        return CKR_OK
    }
}

/// The token flags, Signet's lockout state among them.
func tokenFlags(_ entry: TokenEntry) -> CK_FLAGS {
    var flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_PROTECTED_AUTHENTICATION_PATH
    if entry.failures > 0 { flags |= CKF_USER_PIN_COUNT_LOW }
    if entry.triesLeft == 1 || entry.tokenCounter == "final try" { flags |= CKF_USER_PIN_FINAL_TRY }
    if entry.lockedSeconds != nil || entry.triesLeft == 0 || entry.tokenCounter == "blocked" { flags |= CKF_USER_PIN_LOCKED }
    return flags
}

@_cdecl("signet_C_GetTokenInfo")
func signet_C_GetTokenInfo(_ slotID: CK_SLOT_ID, _ info: UnsafeMutablePointer<CK_TOKEN_INFO>?) -> CK_RV {
    withModule { state in
        guard let info else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        let found = state.lock.withLock { inner -> (Slot, Int, Int)? in
            guard let slot = inner.slots[slotID] else { return nil }
            let sessions = inner.sessions.values.filter { $0.slot == slotID }
            return (slot, sessions.count, sessions.filter { $0.flags & CKF_RW_SESSION != 0 }.count)
        }
        guard let (slot, sessions, rwSessions) = found else { return CKR_SLOT_ID_INVALID }
        guard slot.present else { return CKR_TOKEN_NOT_PRESENT }
        let entry = slot.entry
        pad(&info.pointee.label, entry.label)
        pad(&info.pointee.manufacturerID, entry.manufacturer)
        pad(&info.pointee.model, entry.model)
        pad(&info.pointee.serialNumber, entry.serial)
        info.pointee.flags = tokenFlags(entry)
        info.pointee.ulMaxSessionCount = csignet_infinite()
        info.pointee.ulSessionCount = CK_ULONG(sessions)
        info.pointee.ulMaxRwSessionCount = csignet_infinite()
        info.pointee.ulRwSessionCount = CK_ULONG(rwSessions)
        info.pointee.ulMaxPinLen = CK_ULONG(AgentProtocol.softwareTokenCodeLengths.upperBound)
        info.pointee.ulMinPinLen = 4
        info.pointee.ulTotalPublicMemory = csignet_unavailable()
        info.pointee.ulFreePublicMemory = csignet_unavailable()
        info.pointee.ulTotalPrivateMemory = csignet_unavailable()
        info.pointee.ulFreePrivateMemory = csignet_unavailable()
        info.pointee.hardwareVersion = version
        info.pointee.firmwareVersion = version
        pad(&info.pointee.utcTime, "")
        return CKR_OK
    }
}

@_cdecl("signet_C_WaitForSlotEvent")
func signet_C_WaitForSlotEvent(_ flags: CK_FLAGS, _ slot: UnsafeMutablePointer<CK_SLOT_ID>?, _ reserved: UnsafeMutableRawPointer?) -> CK_RV {
    withModule { state in
        // Blocking would hold the caller's thread on the agent; NSS polls instead when told so.
        guard flags & CKF_DONT_BLOCK != 0 else { return CKR_FUNCTION_NOT_SUPPORTED }
        guard let slot, reserved == nil else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        let changed = state.lock.withLock { inner -> CK_SLOT_ID? in
            for id in inner.slots.keys.sorted() {
                let present = inner.slots[id]!.present
                if inner.reportedPresence[id] != present {
                    let first = inner.reportedPresence[id] == nil
                    inner.reportedPresence[id] = present
                    if !(first && present) { return id }  // a slot present from the start is no event
                }
            }
            return nil
        }
        guard let changed else { return CKR_NO_EVENT }
        slot.pointee = changed
        return CKR_OK
    }
}

// MARK: Mechanisms

/// Every mechanism the module offers, with its flags and key sizes.
let mechanisms: [(CK_MECHANISM_TYPE, CK_FLAGS, min: CK_ULONG, max: CK_ULONG)] = {
    let rsa: (CK_ULONG, CK_ULONG) = (1024, 8192), ec: (CK_ULONG, CK_ULONG) = (256, 521)
    var list: [(CK_MECHANISM_TYPE, CK_FLAGS, min: CK_ULONG, max: CK_ULONG)] = [
        (CKM_RSA_PKCS, CKF_HW | CKF_SIGN | CKF_DECRYPT, rsa.0, rsa.1),
        (CKM_RSA_PKCS_OAEP, CKF_HW | CKF_DECRYPT, rsa.0, rsa.1),
        (CKM_RSA_PKCS_PSS, CKF_HW | CKF_SIGN, rsa.0, rsa.1),
    ]
    for type in [CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
                 CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS] {
        list.append((type, CKF_HW | CKF_SIGN, rsa.0, rsa.1))
    }
    let ecFlags = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS
    for type in [CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512] {
        list.append((type, CKF_HW | CKF_SIGN | ecFlags, ec.0, ec.1))
    }
    list.append((CKM_ECDH1_DERIVE, CKF_HW | CKF_DERIVE | ecFlags, ec.0, ec.1))
    // Only with a KEK that CKM_ECDH1_DERIVE made here: NSS unwraps an ECDH message's content key
    // on the slot that derived the KEK (NSS_CMSUtil_DecryptSymKey_ECDH), by C_Decrypt.
    for type in [CKM_AES_KEY_WRAP, CSIGNET_CKM_NSS_AES_KEY_WRAP] {
        list.append((type, CKF_DECRYPT, 16, 32))
    }
    return list
}()

@_cdecl("signet_C_GetMechanismList")
func signet_C_GetMechanismList(_ slotID: CK_SLOT_ID, _ list: UnsafeMutablePointer<CK_MECHANISM_TYPE>?,
                               _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard let count else { return CKR_ARGUMENTS_BAD }
        guard state.lock.withLock({ $0.slots[slotID] }) != nil else { return CKR_SLOT_ID_INVALID }
        guard let list else {
            count.pointee = CK_ULONG(mechanisms.count)
            return CKR_OK
        }
        guard count.pointee >= CK_ULONG(mechanisms.count) else {
            count.pointee = CK_ULONG(mechanisms.count)
            return CKR_BUFFER_TOO_SMALL
        }
        for (index, mechanism) in mechanisms.enumerated() { list[index] = mechanism.0 }
        count.pointee = CK_ULONG(mechanisms.count)
        return CKR_OK
    }
}

@_cdecl("signet_C_GetMechanismInfo")
func signet_C_GetMechanismInfo(_ slotID: CK_SLOT_ID, _ type: CK_MECHANISM_TYPE, _ info: UnsafeMutablePointer<CK_MECHANISM_INFO>?) -> CK_RV {
    withModule { state in
        guard let info else { return CKR_ARGUMENTS_BAD }
        guard state.lock.withLock({ $0.slots[slotID] }) != nil else { return CKR_SLOT_ID_INVALID }
        guard let found = mechanisms.first(where: { $0.0 == type }) else { return CKR_MECHANISM_INVALID }
        info.pointee = CK_MECHANISM_INFO(ulMinKeySize: found.min, ulMaxKeySize: found.max, flags: found.1)
        return CKR_OK
    }
}

// MARK: Sessions

@_cdecl("signet_C_OpenSession")
func signet_C_OpenSession(_ slotID: CK_SLOT_ID, _ flags: CK_FLAGS, _ application: UnsafeMutableRawPointer?, _ notify: CK_NOTIFY?,
                          _ session: UnsafeMutablePointer<CK_SESSION_HANDLE>?) -> CK_RV {
    withModule { state in
        guard let session else { return CKR_ARGUMENTS_BAD }
        guard flags & CKF_SERIAL_SESSION != 0 else { return CKR_SESSION_PARALLEL_NOT_SUPPORTED }
        state.refreshTokens()
        return state.lock.withLock { inner in
            guard let slot = inner.slots[slotID] else { return CKR_SLOT_ID_INVALID }
            guard slot.present else { return CKR_TOKEN_NOT_PRESENT }
            let handle = inner.nextSession
            inner.nextSession += 1
            inner.sessions[handle] = ModuleSession(slot: slotID, flags: flags, generation: inner.generation)
            session.pointee = handle
            return CKR_OK
        }
    }
}

@_cdecl("signet_C_CloseSession")
func signet_C_CloseSession(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        state.lock.withLock { inner in
            guard inner.sessions.removeValue(forKey: session) != nil else { return CKR_SESSION_HANDLE_INVALID }
            inner.sessionObjects = inner.sessionObjects.filter { $0.value.session != session }
            return CKR_OK
        }
    }
}

@_cdecl("signet_C_CloseAllSessions")
func signet_C_CloseAllSessions(_ slotID: CK_SLOT_ID) -> CK_RV {
    withModule { state in
        state.lock.withLock { inner in
            guard inner.slots[slotID] != nil else { return CKR_SLOT_ID_INVALID }
            let closing = Set(inner.sessions.filter { $0.value.slot == slotID }.keys)
            for handle in closing { inner.sessions[handle] = nil }
            inner.sessionObjects = inner.sessionObjects.filter { !closing.contains($0.value.session ?? 0) }
            return CKR_OK
        }
    }
}

@_cdecl("signet_C_GetSessionInfo")
func signet_C_GetSessionInfo(_ session: CK_SESSION_HANDLE, _ info: UnsafeMutablePointer<CK_SESSION_INFO>?) -> CK_RV {
    withModule { state in
        guard let info else { return CKR_ARGUMENTS_BAD }
        state.refreshTokens()
        let found = try state.session(session)
        let rw = found.flags & CKF_RW_SESSION != 0
        let user = state.loggedIn(found.slot)
        info.pointee = CK_SESSION_INFO(slotID: found.slot,
                                       state: user ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS) : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION),
                                       flags: found.flags, ulDeviceError: 0)
        return CKR_OK
    }
}

// MARK: Login

@_cdecl("signet_C_Login")
func signet_C_Login(_ session: CK_SESSION_HANDLE, _ userType: CK_USER_TYPE, _ pin: UnsafeMutablePointer<UInt8>?, _ pinLength: CK_ULONG) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard userType == CKU_USER else { return userType == CKU_SO ? CKR_FUNCTION_NOT_SUPPORTED : CKR_USER_TYPE_INVALID }
        state.refreshTokens(force: true)
        let entry = try state.lock.withLock { (inner) throws(ModuleError) -> TokenEntry in
            guard let slot = inner.slots[found.slot], slot.present else { throw ModuleError(CKR_DEVICE_REMOVED) }
            return slot.entry
        }
        if entry.unlocked {
            // Unlocked at the agent (by `signet unlock`, or another program): this program is logged in, and
            // CKR_OK rather than CKR_USER_ALREADY_LOGGED_IN (on which pkcs11-tool gives up). A code given now
            // is not checked, as `signet unlock` does not check it on an unlocked token: any program of this
            // user could use the unlocked token through the agent anyway.
            state.lock.withLock { _ = $0.loggedOut.remove(found.slot) }
            return CKR_OK
        }
        let request: AgentRequest
        if let pin {
            guard pinLength > 0, pinLength <= CK_ULONG(SecretBytes.maximumCount) else { return CKR_PIN_LEN_RANGE }
            request = .unlock(token: entry.uri, code: SharedSecret(copying: UnsafeRawBufferPointer(start: pin, count: Int(pinLength))), finalTry: false)
        } else {
            // The protected path (Thunderbird, Firefox): the agent asks the person itself, through pinentry on the
            // screen or terminal this program's environment names (sent with each connection). A person may take
            // a while, for up to three codes: the agent bounds each question (`pinentry-timeout-seconds`).
            request = .unlockAsking(token: entry.uri)
        }
        guard case .access(let outcome) = try state.call(request, timeout: pin == nil ? 900 : 60) else {
            return CKR_DEVICE_ERROR
        }
        state.refreshTokens(force: true)
        switch outcome.kind {
        case .unlocked, .alreadyUnlocked:
            state.lock.withLock { _ = $0.loggedOut.remove(found.slot) }
            return CKR_OK
        case .wrongCode: return CKR_PIN_INCORRECT
        case .locked, .cardFinalTry, .cardBlocked: return CKR_PIN_LOCKED
        case .invalidLength: return CKR_PIN_LEN_RANGE
        case .notPresented: return CKR_DEVICE_REMOVED
        case .failed, .ledgerDamaged: return CKR_DEVICE_ERROR
        case .cancelled, .timedOut, .nowhereToAsk: return CKR_FUNCTION_CANCELED
        }
    }
}

@_cdecl("signet_C_Logout")
func signet_C_Logout(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        // This program stops using the token; the agent keeps it unlocked for the others that
        // share it (`signet lock` locks it for all). See docs/pkcs11-module.md.
        guard state.loggedIn(found.slot) else { return CKR_USER_NOT_LOGGED_IN }
        state.lock.withLock { _ = $0.loggedOut.insert(found.slot) }
        return CKR_OK
    }
}

// MARK: Objects

@_cdecl("signet_C_GetAttributeValue")
func signet_C_GetAttributeValue(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ template: UnsafeMutablePointer<CK_ATTRIBUTE>?,
                                _ count: CK_ULONG) -> CK_RV {
    withModule { state in
        guard let template else { return count == 0 ? CKR_OK : CKR_ARGUMENTS_BAD }
        let found = try state.object(object, session: session)
        var result = CKR_OK
        for index in 0..<Int(count) {
            switch found.attributes[template[index].type] {
            case .bytes(let value)?:
                if let destination = template[index].pValue {
                    if template[index].ulValueLen >= CK_ULONG(value.count) {
                        value.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: value.count) }
                        template[index].ulValueLen = CK_ULONG(value.count)
                    } else {
                        template[index].ulValueLen = csignet_unavailable()
                        if result == CKR_OK { result = CKR_BUFFER_TOO_SMALL }
                    }
                } else {
                    template[index].ulValueLen = CK_ULONG(value.count)
                }
            case .sensitive?:
                template[index].ulValueLen = csignet_unavailable()
                result = CKR_ATTRIBUTE_SENSITIVE
            case nil:
                template[index].ulValueLen = csignet_unavailable()
                if result != CKR_ATTRIBUTE_SENSITIVE { result = CKR_ATTRIBUTE_TYPE_INVALID }
            }
        }
        return result
    }
}

@_cdecl("signet_C_FindObjectsInit")
func signet_C_FindObjectsInit(_ session: CK_SESSION_HANDLE, _ template: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard found.find == nil else { return CKR_OPERATION_ACTIVE }
        guard template != nil || count == 0 else { return CKR_ARGUMENTS_BAD }
        var wanted: [(CK_ATTRIBUTE_TYPE, [UInt8])] = []
        for index in 0..<Int(count) {
            let attribute = template![index]
            let value = attribute.pValue.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(attribute.ulValueLen))) } ?? []
            wanted.append((attribute.type, value))
        }
        let tokenObjects = try state.objects(found.slot)
        let own = state.lock.withLock { inner in inner.sessionObjects.values.filter { $0.session == session } }
        let results = (tokenObjects + own).filter { $0.matches(wanted) }.map(\.handle)
        try state.updateSession(session) { $0.find = (results, 0) }
        return CKR_OK
    }
}

@_cdecl("signet_C_FindObjects")
func signet_C_FindObjects(_ session: CK_SESSION_HANDLE, _ objects: UnsafeMutablePointer<CK_OBJECT_HANDLE>?, _ maximum: CK_ULONG,
                          _ count: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard let count, objects != nil || maximum == 0 else { return CKR_ARGUMENTS_BAD }
        guard try state.session(session).find != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        var n = 0
        try state.updateSession(session) { found in
            guard var find = found.find else { return }
            while n < Int(maximum), find.position < find.results.count {
                objects![n] = find.results[find.position]
                n += 1
                find.position += 1
            }
            found.find = find
        }
        count.pointee = CK_ULONG(n)
        return CKR_OK
    }
}

@_cdecl("signet_C_FindObjectsFinal")
func signet_C_FindObjectsFinal(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        guard try state.session(session).find != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        try state.updateSession(session) { $0.find = nil }
        return CKR_OK
    }
}

@_cdecl("signet_C_GetObjectSize")
func signet_C_GetObjectSize(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ size: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard let size else { return CKR_ARGUMENTS_BAD }
        _ = try state.object(object, session: session)
        size.pointee = csignet_unavailable()
        return CKR_OK
    }
}

@_cdecl("signet_C_DestroyObject")
func signet_C_DestroyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        return state.lock.withLock { inner in
            // Only the session keys this module derived; token objects are deleted with `signet`.
            if inner.sessionObjects.removeValue(forKey: object) != nil { return CKR_OK }
            return inner.handles.values.contains(object) ? CKR_ACTION_PROHIBITED : CKR_OBJECT_HANDLE_INVALID
        }
    }
}

// MARK: Signing

/// The private key for an operation in `session`, with this program logged in.
private func privateKey(_ state: ModuleState, _ session: CK_SESSION_HANDLE, _ key: CK_OBJECT_HANDLE) throws(ModuleError) -> (ModuleSession, ModuleObject) {
    let found = try state.session(session)
    let object = try state.object(key, session: session)
    if object.objectClass == CKO_PRIVATE_KEY, !state.loggedIn(found.slot) {
        state.refreshTokens()
        guard state.loggedIn(found.slot) else { throw ModuleError(CKR_USER_NOT_LOGGED_IN) }
    }
    return (found, object)
}

@_cdecl("signet_C_SignInit")
func signet_C_SignInit(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ key: CK_OBJECT_HANDLE) -> CK_RV {
    withModule { state in
        guard let mechanism else { return CKR_ARGUMENTS_BAD }
        guard try state.session(session).sign == nil else { return CKR_OPERATION_ACTIVE }
        let (_, object) = try privateKey(state, session, key)
        let operation = try SignOperation(mechanism: mechanism.pointee, key: object)
        try state.updateSession(session) { $0.sign = operation }
        return CKR_OK
    }
}

/// Signs the operation's data at the agent: one request. The operation ends unless the buffer was too small.
private func finishSign(_ state: ModuleState, _ session: CK_SESSION_HANDLE, extra: [UInt8]?, _ signature: UnsafeMutablePointer<UInt8>?,
                        _ length: UnsafeMutablePointer<CK_ULONG>?) throws(ModuleError) -> CK_RV {
    guard let length else { throw ModuleError(CKR_ARGUMENTS_BAD) }
    let found = try state.session(session)
    guard let operation = found.sign else { return CKR_OPERATION_NOT_INITIALIZED }
    if extra != nil, operation.parts { return CKR_OPERATION_ACTIVE }  // C_Sign after C_SignUpdate
    let expected = operation.key.signatureLength
    // A length query, or a buffer too small, answers without asking the agent and keeps the operation.
    guard let signature, length.pointee >= CK_ULONG(expected) else {
        length.pointee = CK_ULONG(expected)
        return signature == nil ? CKR_OK : CKR_BUFFER_TOO_SMALL
    }
    defer { try? state.updateSession(session) { $0.sign = nil } }
    let input = try operation.agentInput(extra)
    let response: AgentResponse
    do throws(ModuleError) {
        response = try state.call(.sign(key: operation.key.uri, mechanism: operation.wire, data: input))
    } catch {
        if error.rv == CKR_USER_NOT_LOGGED_IN { state.noteLocked(found.slot) }
        throw error
    }
    guard case .signature(let bytes) = response else { return CKR_DEVICE_ERROR }
    return output(bytes, to: signature, length: length)
}

@_cdecl("signet_C_Sign")
func signet_C_Sign(_ session: CK_SESSION_HANDLE, _ data: UnsafeMutablePointer<UInt8>?, _ dataLength: CK_ULONG,
                   _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard data != nil || dataLength == 0 else { return CKR_ARGUMENTS_BAD }
        return try finishSign(state, session, extra: bytes(data, dataLength), signature, length)
    }
}

@_cdecl("signet_C_SignUpdate")
func signet_C_SignUpdate(_ session: CK_SESSION_HANDLE, _ part: UnsafeMutablePointer<UInt8>?, _ partLength: CK_ULONG) -> CK_RV {
    withModule { state in
        guard part != nil || partLength == 0 else { return CKR_ARGUMENTS_BAD }
        // Raw RSA and ECDSA take their one digest in parts too (as SoftHSM2 does): it is only joined here.
        guard try state.session(session).sign != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        let chunk = bytes(part, partLength)
        var result = CKR_OK
        try state.updateSession(session) { session in
            do throws(ModuleError) {
                try session.sign?.update(chunk)
            } catch {
                session.sign = nil
                result = error.rv
            }
        }
        return result
    }
}

@_cdecl("signet_C_SignFinal")
func signet_C_SignFinal(_ session: CK_SESSION_HANDLE, _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in try finishSign(state, session, extra: nil, signature, length) }
}

// MARK: Decryption

@_cdecl("signet_C_DecryptInit")
func signet_C_DecryptInit(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ key: CK_OBJECT_HANDLE) -> CK_RV {
    withModule { state in
        guard let mechanism else { return CKR_ARGUMENTS_BAD }
        guard try state.session(session).decrypt == nil else { return CKR_OPERATION_ACTIVE }
        let (_, object) = try privateKey(state, session, key)
        let operation = try DecryptOperation(mechanism: mechanism.pointee, key: object)
        try state.updateSession(session) { $0.decrypt = operation }
        return CKR_OK
    }
}

@_cdecl("signet_C_Decrypt")
func signet_C_Decrypt(_ session: CK_SESSION_HANDLE, _ data: UnsafeMutablePointer<UInt8>?, _ dataLength: CK_ULONG,
                      _ plain: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard let length, data != nil || dataLength == 0 else { return CKR_ARGUMENTS_BAD }
        let found = try state.session(session)
        guard let operation = found.decrypt else { return CKR_OPERATION_NOT_INITIALIZED }
        if plain == nil, operation.pending == nil {
            length.pointee = CK_ULONG(operation.maximumLength)
            return CKR_OK
        }
        let result: SharedSecret
        if let pending = operation.pending {
            result = pending
        } else {
            let input = bytes(data, dataLength)
            switch operation.kind {
            case .rsa(let wire):
                let response: AgentResponse
                do throws(ModuleError) {
                    response = try state.call(.decrypt(key: operation.key.uri, mechanism: wire, ciphertext: input))
                } catch {
                    try? state.updateSession(session) { $0.decrypt = nil }
                    if error.rv == CKR_USER_NOT_LOGGED_IN { state.noteLocked(found.slot) }
                    throw error.rv == CKR_DATA_INVALID ? ModuleError(CKR_ENCRYPTED_DATA_INVALID) : error
                }
                guard case .plaintext(var bytes) = response else { return CKR_DEVICE_ERROR }
                result = SharedSecret(SecretBytes(copying: bytes))
                bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            case .aesUnwrap(let iv):
                do throws(ModuleError) {
                    result = try KeyUnwrap.unwrap(kek: operation.key.secret!, wrapped: input, iv: iv)
                } catch {
                    try? state.updateSession(session) { $0.decrypt = nil }
                    throw error
                }
            }
        }
        guard let plain, length.pointee >= CK_ULONG(result.count) else {
            // Kept for the next call with a larger buffer: the token is not asked twice.
            length.pointee = CK_ULONG(result.count)
            try state.updateSession(session) { $0.decrypt?.pending = result }
            return plain == nil ? CKR_OK : CKR_BUFFER_TOO_SMALL
        }
        result.use { secret in secret.withUnsafeBytes { plain.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: $0.count) } }
        length.pointee = CK_ULONG(result.count)
        try state.updateSession(session) { $0.decrypt = nil }
        return CKR_OK
    }
}

// MARK: Key agreement

@_cdecl("signet_C_DeriveKey")
func signet_C_DeriveKey(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ baseKey: CK_OBJECT_HANDLE,
                        _ template: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG, _ key: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    withModule { state in
        guard let mechanism, let key, template != nil || count == 0 else { return CKR_ARGUMENTS_BAD }
        guard mechanism.pointee.mechanism == CKM_ECDH1_DERIVE else { return CKR_MECHANISM_INVALID }
        guard let parameter = mechanism.pointee.pParameter,
              mechanism.pointee.ulParameterLen == CK_ULONG(MemoryLayout<CK_ECDH1_DERIVE_PARAMS>.size) else { return CKR_MECHANISM_PARAM_INVALID }
        let params = parameter.loadUnaligned(as: CK_ECDH1_DERIVE_PARAMS.self)
        let (found, object) = try privateKey(state, session, baseKey)
        guard object.objectClass == CKO_PRIVATE_KEY, object.keyType == .ec else { return CKR_KEY_TYPE_INCONSISTENT }
        guard object.usages.contains(.derive) else { return CKR_KEY_FUNCTION_NOT_PERMITTED }
        let kdfHash = X963.hash(forKDF: params.kdf)
        guard params.kdf == CKD_NULL || kdfHash != nil else { return CKR_MECHANISM_PARAM_INVALID }
        let fieldBytes = (object.bits + 7) / 8
        // Raw or inside an OCTET STRING: NSS tries both (pk11_PubDeriveECKeyWithKDF).
        guard let point = DER.uncompressedPoint(bytes(params.pPublicData, params.ulPublicDataLen), fieldLength: fieldBytes) else {
            return CKR_MECHANISM_PARAM_INVALID
        }
        let sharedInfo = bytes(params.pSharedData, params.ulSharedDataLen)

        // The new key's template: class, type, length and what it may do.
        var attributes: [CK_ATTRIBUTE_TYPE: AttributeValue] = [
            CKA_CLASS: .ulong(CKO_SECRET_KEY), CKA_KEY_TYPE: .ulong(CKK_GENERIC_SECRET), CKA_TOKEN: .bool(false),
            CKA_PRIVATE: .bool(true), CKA_MODIFIABLE: .bool(false), CKA_LABEL: .bytes([]), CKA_ID: .bytes([]),
            CKA_SENSITIVE: .bool(true), CKA_EXTRACTABLE: .bool(false), CKA_LOCAL: .bool(false), CKA_DERIVE: .bool(false),
            CKA_ENCRYPT: .bool(false), CKA_DECRYPT: .bool(false), CKA_WRAP: .bool(false), CKA_UNWRAP: .bool(false),
            CKA_SIGN: .bool(false), CKA_VERIFY: .bool(false),
        ]
        var valueLength: Int?
        for index in 0..<Int(count) {
            let attribute = template![index]
            let value = attribute.pValue.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(attribute.ulValueLen))) } ?? []
            switch attribute.type {
            case CKA_TOKEN where value.contains { $0 != 0 }: return CKR_TEMPLATE_INCONSISTENT  // session keys only
            case CKA_CLASS:
                guard value.count == MemoryLayout<CK_ULONG>.size, value.withUnsafeBytes({ $0.loadUnaligned(as: CK_ULONG.self) }) == CKO_SECRET_KEY
                else { return CKR_TEMPLATE_INCONSISTENT }
            case CKA_VALUE_LEN:
                guard value.count == MemoryLayout<CK_ULONG>.size else { return CKR_ATTRIBUTE_VALUE_INVALID }
                let requested = Int(value.withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) })
                guard requested > 0, requested <= 64 else { return CKR_ATTRIBUTE_VALUE_INVALID }
                valueLength = requested
                attributes[CKA_VALUE_LEN] = .bytes(value)
            default:
                attributes[attribute.type] = .bytes(value)
            }
        }
        // Without a KDF the shared secret is the key; with one, as long as asked (or one hash).
        let length = valueLength ?? (kdfHash?.length ?? fieldBytes)
        if kdfHash == nil, length > fieldBytes { return CKR_TEMPLATE_INCONSISTENT }
        attributes[CKA_VALUE_LEN] = .ulong(CK_ULONG(length))

        // One request: the raw ECDH secret (the agent's derive, CKD_NULL); the KDF is run here.
        let response: AgentResponse
        do throws(ModuleError) {
            response = try state.call(.derive(key: object.uri, kdf: UInt64(CKD_NULL), sharedData: [], peerPoint: point))
        } catch {
            if error.rv == CKR_USER_NOT_LOGGED_IN { state.noteLocked(found.slot) }
            throw error
        }
        guard case .derived(var secret) = response, secret.count == fieldBytes else { return CKR_DEVICE_ERROR }
        defer { secret.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var value = kdfHash.map { X963.derive(secret, hash: $0, sharedInfo: sharedInfo, length: length) } ?? Array(secret.prefix(length))
        defer { value.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        // The value is readable only when the caller asked for a key that is not sensitive and extractable.
        let readable = attributes[CKA_SENSITIVE].map { if case .bytes(let b) = $0 { !b.contains { $0 != 0 } } else { false } } ?? false
            && (attributes[CKA_EXTRACTABLE].map { if case .bytes(let b) = $0 { b.contains { $0 != 0 } } else { false } } ?? false)
        attributes[CKA_VALUE] = readable ? .bytes(value) : .sensitive
        attributes[CKA_ALWAYS_SENSITIVE] = .bool(!readable)
        attributes[CKA_NEVER_EXTRACTABLE] = .bool(!readable)
        return state.lock.withLock { inner in
            let handle = inner.nextHandle
            inner.nextHandle += 1
            inner.sessionObjects[handle] = ModuleObject(handle: handle, uri: "", objectClass: CKO_SECRET_KEY, keyType: nil, bits: length * 8,
                                                        usages: [], attributes: attributes,
                                                        secret: SharedSecret(SecretBytes(copying: value)), session: session)
            key.pointee = handle
            return CKR_OK
        }
    }
}

// MARK: Not offered

// Token and code administration is `signet`'s (so the lockout stays in one place); the module creates
// no objects, has no random generator, and offers no symmetric or digest operation of its own.
@_cdecl("signet_C_InitToken") func signet_C_InitToken(_ s: CK_SLOT_ID, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG, _ label: UnsafeMutablePointer<UInt8>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_InitPIN") func signet_C_InitPIN(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG) -> CK_RV { notSupported() }
@_cdecl("signet_C_SetPIN") func signet_C_SetPIN(_ s: CK_SESSION_HANDLE, _ o: UnsafeMutablePointer<UInt8>?, _ ol: CK_ULONG, _ n: UnsafeMutablePointer<UInt8>?, _ nl: CK_ULONG) -> CK_RV { notSupported() }
@_cdecl("signet_C_GetOperationState") func signet_C_GetOperationState(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_SetOperationState") func signet_C_SetOperationState(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG, _ e: CK_OBJECT_HANDLE, _ a: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
@_cdecl("signet_C_CreateObject") func signet_C_CreateObject(_ s: CK_SESSION_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ o: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_CopyObject") func signet_C_CopyObject(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ n: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_SetAttributeValue") func signet_C_SetAttributeValue(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG) -> CK_RV { notSupported() }
@_cdecl("signet_C_EncryptInit") func signet_C_EncryptInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
@_cdecl("signet_C_Encrypt") func signet_C_Encrypt(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_EncryptUpdate") func signet_C_EncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_EncryptFinal") func signet_C_EncryptFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_DecryptUpdate") func signet_C_DecryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_DecryptFinal") func signet_C_DecryptFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_DigestInit") func signet_C_DigestInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_Digest") func signet_C_Digest(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_DigestUpdate") func signet_C_DigestUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG) -> CK_RV { notSupported() }
@_cdecl("signet_C_DigestKey") func signet_C_DigestKey(_ s: CK_SESSION_HANDLE, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
@_cdecl("signet_C_DigestFinal") func signet_C_DigestFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_SignRecoverInit") func signet_C_SignRecoverInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
@_cdecl("signet_C_SignRecover") func signet_C_SignRecover(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_VerifyInit") func signet_C_VerifyInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
@_cdecl("signet_C_Verify") func signet_C_Verify(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: CK_ULONG) -> CK_RV { notSupported() }
@_cdecl("signet_C_VerifyUpdate") func signet_C_VerifyUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG) -> CK_RV { notSupported() }
@_cdecl("signet_C_VerifyFinal") func signet_C_VerifyFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: CK_ULONG) -> CK_RV { notSupported() }
@_cdecl("signet_C_VerifyRecoverInit") func signet_C_VerifyRecoverInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
@_cdecl("signet_C_VerifyRecover") func signet_C_VerifyRecover(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_DigestEncryptUpdate") func signet_C_DigestEncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_DecryptDigestUpdate") func signet_C_DecryptDigestUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_SignEncryptUpdate") func signet_C_SignEncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_DecryptVerifyUpdate") func signet_C_DecryptVerifyUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_GenerateKey") func signet_C_GenerateKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ k: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_GenerateKeyPair") func signet_C_GenerateKeyPair(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ pt: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ pc: CK_ULONG, _ st: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ sc: CK_ULONG, _ pk: UnsafeMutablePointer<CK_OBJECT_HANDLE>?, _ sk: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_WrapKey") func signet_C_WrapKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ w: CK_OBJECT_HANDLE, _ k: CK_OBJECT_HANDLE, _ o: UnsafeMutablePointer<UInt8>?, _ ol: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_UnwrapKey") func signet_C_UnwrapKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ u: CK_OBJECT_HANDLE, _ w: UnsafeMutablePointer<UInt8>?, _ wl: CK_ULONG, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ k: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
@_cdecl("signet_C_SeedRandom") func signet_C_SeedRandom(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG) -> CK_RV { Module.state == nil ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_RANDOM_NO_RNG }
@_cdecl("signet_C_GenerateRandom") func signet_C_GenerateRandom(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG) -> CK_RV { Module.state == nil ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_RANDOM_NO_RNG }
@_cdecl("signet_C_GetFunctionStatus") func signet_C_GetFunctionStatus(_ s: CK_SESSION_HANDLE) -> CK_RV { Module.state == nil ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_FUNCTION_NOT_PARALLEL }
@_cdecl("signet_C_CancelFunction") func signet_C_CancelFunction(_ s: CK_SESSION_HANDLE) -> CK_RV { Module.state == nil ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_FUNCTION_NOT_PARALLEL }

private func notSupported() -> CK_RV { Module.state == nil ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_FUNCTION_NOT_SUPPORTED }
