<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows an Atom or RSS feed written by aggregator as a page when a browser opens it.
     Static: no scripts, no external resources; entry content is shown as text (summaries), never
     as markup. Feed readers ignore this file. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:a="http://www.w3.org/2005/Atom"
    xmlns:fh="http://purl.org/syndication/history/1.0"
    exclude-result-prefixes="a fh">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:variable name="title" select="a:feed/a:title | rss/channel/title"/>
    <xsl:variable name="self" select="(a:feed/a:link | rss/channel/a:link)[@rel='self']/@href"/>
    <xsl:variable name="links" select="a:feed/a:link | rss/channel/a:link"/>
    <html>
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
.hint { background: #f4f4f4; padding: .75rem 1rem; border-radius: .5rem; }
.hint code { word-break: break-all; }
article { border-bottom: 1px solid #ddd; padding: .5rem 0; }
h2 { font-size: 1.1rem; margin: .25rem 0; }
time, nav { color: #666; font-size: .9rem; }
        </style>
      </head>
      <body>
        <h1><xsl:value-of select="$title"/></h1>
        <p><xsl:value-of select="a:feed/a:subtitle | rss/channel/description"/></p>
        <p class="hint">
          <xsl:choose>
            <xsl:when test="a:feed/fh:archive | rss/channel/fh:archive">This is an archive page
              of a feed. To subscribe, copy the address of the
              <a href="{$links[@rel='current']/@href}">current feed</a> into your feed
              reader.</xsl:when>
            <xsl:otherwise>This is a web feed. To subscribe, copy its address into your feed
              reader: <code><xsl:value-of select="$self"/></code></xsl:otherwise>
          </xsl:choose>
          <xsl:text> </xsl:text>
          <a href="{(a:feed/a:link[@rel='alternate']/@href | rss/channel/link)[1]}">All feeds</a>
        </p>
        <nav>
          <xsl:for-each select="$links[@rel='prev-archive' or @rel='next-archive']">
            <a href="{@href}">
              <xsl:choose>
                <xsl:when test="@rel='prev-archive'">Older entries</xsl:when>
                <xsl:otherwise>Newer entries</xsl:otherwise>
              </xsl:choose>
            </a>
            <xsl:text> </xsl:text>
          </xsl:for-each>
        </nav>
        <xsl:apply-templates select="a:feed/a:entry | rss/channel/item"/>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="a:entry | item">
    <article>
      <xsl:variable name="href" select="(a:link[not(@rel) or @rel='alternate']/@href | link)[1]"/>
      <h2>
        <xsl:choose>
          <xsl:when test="$href">
            <a href="{$href}"><xsl:value-of select="a:title | title"/></a>
          </xsl:when>
          <xsl:otherwise><xsl:value-of select="a:title | title"/></xsl:otherwise>
        </xsl:choose>
      </h2>
      <time><xsl:value-of select="a:published | pubDate"/></time>
      <p><xsl:value-of select="a:summary | description"/></p>
    </article>
  </xsl:template>
</xsl:stylesheet>
