#!/bin/sh
# Install (or upgrade) mailbot as a systemd service from this checkout, on Debian 12.
# Run as root:  sudo deploy/install.sh      (safe to run again: it keeps your config)
#
#   /opt/mailbot                the code of this checkout's HEAD, and its venv (.venv)
#   /etc/mailbot/config.toml    the configuration; rules/ and templates/ beside it
#   /etc/mailbot/mailbot.env    the secrets (from deploy/mailbot.env.example), 0640 root:mailbot
#   /var/lib/mailbot            the database, owned by the mailbot user
#   /etc/systemd/system/mailbot.service
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/mailbot etc=/etc/mailbot state=/var/lib/mailbot

[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

# A dedicated system user, no login, no home of its own outside the data dir.
id -u mailbot >/dev/null 2>&1 ||
  useradd --system --user-group --home-dir "$state" --no-create-home --shell /usr/sbin/nologin mailbot

# The code: exactly what git has at HEAD (no .venv, no database, no local files).
install -d -m 0755 "$prefix"
git -C "$src" archive HEAD | tar -x -C "$prefix"
"$prefix/.ci/setup"            # the venv, the package, tesseract with its Japanese model

# Configuration, rules and templates in /etc, where the operator edits them (kept on upgrade).
install -d -m 0750 -o root -g mailbot "$etc"
if [ ! -e "$etc/config.toml" ]; then
  sed -e 's#^url = "sqlite:///data/mailbot.db"#url = "sqlite:////var/lib/mailbot/mailbot.db"#' \
      -e 's#^token_file = "data/oauth2-token.json"#token_file = "/var/lib/mailbot/oauth2-token.json"#' \
      "$prefix/config.toml" > "$etc/config.toml"
  chown root:mailbot "$etc/config.toml" && chmod 0640 "$etc/config.toml"
fi
for dir in rules templates; do
  [ -e "$etc/$dir" ] || { cp -r "$prefix/$dir" "$etc/$dir"; chown -R root:mailbot "$etc/$dir"; }
done
[ -e "$etc/mailbot.env" ] ||
  install -m 0640 -o root -g mailbot "$prefix/deploy/mailbot.env.example" "$etc/mailbot.env"

install -d -m 0750 -o mailbot -g mailbot "$state"
install -m 0644 "$prefix/deploy/mailbot.service" /etc/systemd/system/mailbot.service
systemctl daemon-reload

# One command as the service runs it (its user, its secrets): mailbot-as-service db upgrade
cat > /usr/local/sbin/mailbot-as-service <<RUN
#!/bin/sh
exec systemd-run --quiet --wait --pipe --collect -p User=mailbot -p Group=mailbot \\
  -p EnvironmentFile=-$etc/mailbot.env -p WorkingDirectory=$state \\
  $prefix/.venv/bin/mailbot --config $etc/config.toml "\$@"
RUN
chmod 0755 /usr/local/sbin/mailbot-as-service

cat <<NEXT
Installed. Next:
  1. edit $etc/config.toml (mailbox, SMTP, program dates) and $etc/mailbot.env (passwords)
  2. mailbot-as-service db upgrade        # create or upgrade the database schema
  3. mailbot-as-service run --once        # one cycle by hand: the mailbox and SMTP answer?
  4. systemctl enable --now mailbot && systemctl status mailbot
NEXT
