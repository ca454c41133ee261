#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// Random numbers and the parallel functions (PKCS#11 2.40, 5.15 and 5.17): answered, not offered.

// These four are offered in the function list with answers of their own, so a session or argument
// error ranks above "no generator" or "not parallel" (PKCS#11 2.40, 5.1.8: session-handle codes come
// before the other codes of a function).
func signet_C_SeedRandom(_ session: CK_SESSION_HANDLE, _ seed: UnsafeMutablePointer<UInt8>?, _ length: CK_ULONG) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard seed != nil || length == 0 else { return CKR_ARGUMENTS_BAD }
        return CKR_RANDOM_NO_RNG
    }
}

func signet_C_GenerateRandom(_ session: CK_SESSION_HANDLE, _ random: UnsafeMutablePointer<UInt8>?, _ length: CK_ULONG) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard random != nil || length == 0 else { return CKR_ARGUMENTS_BAD }
        return CKR_RANDOM_NO_RNG
    }
}

func signet_C_GetFunctionStatus(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        return CKR_FUNCTION_NOT_PARALLEL
    }
}

func signet_C_CancelFunction(_ session: CK_SESSION_HANDLE) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        return CKR_FUNCTION_NOT_PARALLEL
    }
}

/// The stub of a function the module does not offer. PKCS#11 2.40 (5.1.6, `CKR_FUNCTION_NOT_SUPPORTED`):
