#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// Sessions and login (PKCS#11 2.40, 5.6).

func signet_C_OpenSession(_ slotID: CK_SLOT_ID, _ flags: CK_FLAGS, _ application: UnsafeMutableRawPointer?, _ notify: CK_NOTIFY?,
                          _ session: UnsafeMutablePointer<CK_SESSION_HANDLE>?) -> CK_RV {
    withModule { state in
        guard let session else { return CKR_ARGUMENTS_BAD }
        guard flags & CKF_SERIAL_SESSION != 0 else { return CKR_SESSION_PARALLEL_NOT_SUPPORTED }
        state.refreshTokens()
        _ = try state.slot(slotID)
        session.pointee = try state.openSession(slotID, flags: flags)
        return CKR_OK
    }
}

func signet_C_CloseSession(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        try state.closeSession(session)
        return CKR_OK
    }
}

func signet_C_CloseAllSessions(_ slotID: CK_SLOT_ID) -> CK_RV {
    withModule { state in
        _ = try state.slot(slotID)
        state.closeAllSessions(slotID)
        return CKR_OK
    }
}

func signet_C_GetSessionInfo(_ session: CK_SESSION_HANDLE, _ info: UnsafeMutablePointer<CK_SESSION_INFO>?) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
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

func signet_C_Login(_ session: CK_SESSION_HANDLE, _ userType: CK_USER_TYPE, _ pin: UnsafeMutablePointer<UInt8>?, _ pinLength: CK_ULONG) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard userType == CKU_USER else { return userType == CKU_SO ? CKR_FUNCTION_NOT_SUPPORTED : CKR_USER_TYPE_INVALID }
        // Without a code (NULL), the agent asks the person: the protected path.
        return try state.logIn(session, code: UnsafeRawPointer(pin), length: pinLength)
    }
}

func signet_C_Logout(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        // This program stops using the token; the agent keeps it unlocked for the others that
        // share it (`signet lock` locks it for all). See docs/pkcs11-module.md.
        try state.logOut(session)
        return CKR_OK
    }
}
