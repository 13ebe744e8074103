package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/mount"
)

// listJSON is one entry of `cryptvol list --json`; field names are stable.
type listJSON struct {
	File       string `json:"file"`
	UUID       string `json:"uuid"`
	Device     string `json:"device"`
	MountPoint string `json:"mount_point"`
	Via        string `json:"via"`
	ReadOnly   bool   `json:"read_only"`
	PID        int    `json:"pid"`
	State      string `json:"state"` // "open", "closing", "dead" (server gone: run close) or "unresponsive"
	// User is who opened it (root sees every user's vaults); Driver the
	// userspace filesystem driver on the fuse path.
	User   string `json:"user"`
	Driver string `json:"driver,omitempty"`
}

func newListCommand(u *ui) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List open vaults",
		Long: `List every open vault: its file, block device (or FUSE file), mount point,
path (loop, nbd or fuse), whether it is read-only, and the pid of its server.
A vault whose server died shows as "dead": 'cryptvol close' cleans it up.
Each running server is asked for its state over its control socket.

A user sees their own vaults; root sees everyone's, with a USER column.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			found, err := mount.ListAll(mount.Registries())
			if err != nil {
				return err
			}
			entries := []listJSON{}
			for _, e := range found {
				st, state := e.Registry.Status(c.Context(), e.State)
				entries = append(entries, listJSON{File: st.File, UUID: st.UUID, Device: st.Device, MountPoint: st.MountPoint,
					Via: st.Via, ReadOnly: st.ReadOnly, PID: st.PID, State: string(state), User: userName(st.UID), Driver: st.Driver})
			}
			if asJSON {
				b, _ := json.MarshalIndent(entries, "", "  ")
				u.printf("%s\n", b)
				return nil
			}
			if len(entries) == 0 {
				u.printf("no open vaults\n")
				return nil
			}
			root := os.Geteuid() == 0
			tw := tabwriter.NewWriter(u.stdout, 0, 4, 2, ' ', 0)
			if root {
				fmt.Fprint(tw, "USER\t")
			}
			fmt.Fprintln(tw, "FILE\tDEVICE\tMOUNT POINT\tVIA\tMODE\tPID\tSTATE")
			for _, e := range entries {
				mode, mp := "rw", e.MountPoint
				if e.ReadOnly {
					mode = "ro"
				}
				if mp == "" {
					mp = "-"
				}
				if root {
					fmt.Fprintf(tw, "%s\t", printableArgs([]any{e.User})...)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", printableArgs([]any{e.File, e.Device, mp, e.Via, mode, e.PID, e.State})...)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// userName is the login name of uid, or the number if it has none.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}
