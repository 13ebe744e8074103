package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

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
}

func newListCommand(u *ui) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List open vaults",
		Long: `List every open vault: its file, block device, mount point, block path (loop or
nbd), whether it is read-only, and the pid of its server. A vault whose server
died shows as "dead": 'cryptvol close' cleans it up. Each running server is asked
for its state over its control socket.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			states, err := registry().List()
			if err != nil {
				return err
			}
			entries := []listJSON{}
			reg := registry()
			for _, st := range states {
				state := "open"
				if !st.Alive() {
					state = "dead"
				} else {
					// Ask the server itself: its answer is the truth.
					ctx, cancel := context.WithTimeout(c.Context(), 3*time.Second)
					rep, err := reg.Control(ctx, st.ID, mount.ControlRequest{Op: "status"})
					cancel()
					switch {
					case err != nil || rep.State == nil:
						state = "unresponsive"
					case rep.State.Closing:
						state, st = "closing", *rep.State
					default:
						st = *rep.State
					}
				}
				entries = append(entries, listJSON{File: st.File, UUID: st.UUID, Device: st.Device, MountPoint: st.MountPoint,
					Via: st.Via, ReadOnly: st.ReadOnly, PID: st.PID, State: state})
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
			tw := tabwriter.NewWriter(u.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FILE\tDEVICE\tMOUNT POINT\tVIA\tMODE\tPID\tSTATE")
			for _, e := range entries {
				mode, mp := "rw", e.MountPoint
				if e.ReadOnly {
					mode = "ro"
				}
				if mp == "" {
					mp = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.File, e.Device, mp, e.Via, mode, e.PID, e.State)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
