// Command cosigverify is an independent verifier of cosigned checkpoints, written from the C2SP
// specs (signed-note, tlog-checkpoint, tlog-cosignature) with none of xborder-gateway's code.
//
//	cosigverify NOTE_FILE LOG_VKEY WITNESS_VKEY
//
// It exits 0 and prints "OK <origin> <size> <cosignature time>" when the note carries a valid
// Ed25519 signature by the log key and a valid cosignature/v1 (algorithm 0x04) by the witness key;
// otherwise it prints "REJECT: <reason>" and exits 1.
package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	tnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func reject(format string, args ...any) {
	fmt.Printf("REJECT: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: cosigverify NOTE_FILE LOG_VKEY WITNESS_VKEY")
		os.Exit(2)
	}
	msg, err := os.ReadFile(os.Args[1])
	if err != nil {
		reject("read: %v", err)
	}
	logV, err := note.NewVerifier(strings.TrimSpace(os.Args[2]))
	if err != nil {
		reject("log key: %v", err)
	}
	witV, err := tnote.NewVerifierForCosignatureV1(strings.TrimSpace(os.Args[3]))
	if err != nil {
		reject("witness key: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(logV, witV))
	if err != nil {
		reject("open: %v", err)
	}
	haveLog, haveWitness := false, false
	var when string
	for _, s := range n.Sigs {
		if s.Name == logV.Name() && s.Hash == logV.KeyHash() {
			haveLog = true
		}
		if s.Name == witV.Name() && s.Hash == witV.KeyHash() {
			t, err := tnote.CoSigV1Timestamp(s)
			if err != nil {
				reject("cosignature timestamp: %v", err)
			}
			haveWitness = true
			when = strconv.FormatInt(t.Unix(), 10)
		}
	}
	if !haveLog {
		reject("no valid log signature")
	}
	if !haveWitness {
		reject("no valid witness cosignature")
	}
	// tlog-checkpoint: origin, decimal size, base64 32-byte root, then optional extension lines
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		reject("checkpoint needs three lines")
	}
	if _, err := strconv.ParseUint(lines[1], 10, 64); err != nil {
		reject("checkpoint size: %v", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		reject("checkpoint root is not a base64 SHA-256 hash")
	}
	fmt.Printf("OK %s %s %s\n", lines[0], lines[1], when)
}
