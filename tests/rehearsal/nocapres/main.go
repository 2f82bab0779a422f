// nocapres is the rehearsal engine's OCI runtime: runc, minus CAP_SYS_RESOURCE.
//
// These machines' capability bounding set lacks CAP_SYS_RESOURCE (grep CapBnd /proc/self/status),
// so runc refuses every --privileged container ("unable to apply caps: operation not permitted"),
// and kind runs every node privileged and execs into it so. This wrapper takes the capability out
// of the container's config.json (create, run) and out of the process spec (exec), then runs
// runc with the same arguments. Every other call goes to runc untouched.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const dropped = "CAP_SYS_RESOURCE"

func main() {
	runc := os.Getenv("NOCAPRES_RUNC")
	if runc == "" {
		runc = "runc"
	}
	path, err := lookPath(runc)
	if err != nil {
		fail(err)
	}
	args := os.Args[1:]
	switch command(args) {
	case "create", "run":
		bundle := value(args, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		if err := edit(filepath.Join(bundle, "config.json"), func(spec map[string]any) {
			if process, ok := spec["process"].(map[string]any); ok {
				strip(process)
			}
		}); err != nil {
			fail(err)
		}
	case "exec":
		if process := value(args, "--process", "-p"); process != "" {
			if err := edit(process, strip); err != nil {
				fail(err)
			}
		}
	}
	fail(syscall.Exec(path, append([]string{runc}, args...), os.Environ()))
}

// The subcommand: the first argument that is not a global option (or an option's value).
func command(args []string) string {
	withValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if withValue[a] {
			i++
			continue
		}
		if len(a) > 0 && a[0] == '-' {
			continue
		}
		return a
	}
	return ""
}

// The value of option long/short, as `--opt v`, `--opt=v`, `-o v`.
func value(args []string, long, short string) string {
	for i, a := range args {
		if (a == long || a == short) && i+1 < len(args) {
			return args[i+1]
		}
		if len(a) > len(long)+1 && a[:len(long)+1] == long+"=" {
			return a[len(long)+1:]
		}
	}
	return ""
}

// strip removes the capability from every set of a process spec.
func strip(process map[string]any) {
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return
	}
	for set, list := range caps {
		names, ok := list.([]any)
		if !ok {
			continue
		}
		kept := names[:0]
		for _, name := range names {
			if name != dropped {
				kept = append(kept, name)
			}
		}
		caps[set] = kept
	}
}

func edit(file string, change func(map[string]any)) error {
	text, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(text, &doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	change(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	tmp := file + ".nocapres"
	if err := os.WriteFile(tmp, out, info.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func lookPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH") + ":/usr/sbin:/usr/bin:/sbin:/bin") {
		candidate := filepath.Join(dir, name)
		if info, err := os.Stat(candidate); err == nil && info.Mode()&0o111 != 0 && !info.IsDir() {
			self, _ := os.Executable()
			if candidate != self {
				return candidate, nil
			}
		}
	}
	return "", fmt.Errorf("nocapres: %s not found on PATH", name)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "nocapres:", err)
	os.Exit(1)
}
